//! Rendering: handlebars in strict mode, so a missing variable is an error and
//! never a blank in a sent message. HTML parts are escaped; subjects, text parts
//! and SMS are plain text and are not (an `&` in a link must stay an `&`).

use std::collections::HashMap;

use handlebars::{Context, Handlebars, RenderErrorReason};
use serde_json::{Map, Value};

use super::error::RenderError;
use super::meta::LangMode;
use super::recipient::Recipient;
use super::skeleton::Skeletons;
use super::sms::{self, SmsInfo};
use super::{one_line, TemplateDef, TemplateSet};
use crate::domain::{ChannelKind, Language};

mod helpers;

pub use helpers::long_date;
use helpers::{Compare, DateHelper, MonthHelper};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSms {
    /// The text to send (transliterated when the template asks for it).
    pub text: String,
    pub info: SmsInfo,
    /// `es`, `en` or `both`.
    pub language: String,
    /// The contact's language was not available and Spanish was used.
    pub fell_back: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub language: String,
    pub fell_back: bool,
}

pub struct Renderer {
    set: TemplateSet,
    html: Handlebars<'static>,
    plain: Handlebars<'static>,
    programme: Value,
    /// (entity code, language) → `{{entity.*}}` in that language.
    entities: HashMap<(String, Language), Value>,
    skeletons: Skeletons,
}

impl Renderer {
    /// Compiles every template of the set; the first error is returned (`templates
    /// check` reports them all).
    pub fn new(set: TemplateSet) -> Result<Renderer, RenderError> {
        let mut html = Handlebars::new();
        let mut plain = Handlebars::new();
        for registry in [&mut html, &mut plain] {
            registry.set_strict_mode(true);
            registry.register_helper("date", Box::new(DateHelper));
            registry.register_helper("month_name", Box::new(MonthHelper));
            registry.register_helper("eq", Box::new(Compare { equal: true }));
            registry.register_helper("ne", Box::new(Compare { equal: false }));
        }
        plain.register_escape_fn(handlebars::no_escape);
        for (name, (file, source)) in &set.partials {
            for registry in [&mut html, &mut plain] {
                registry
                    .register_partial(name, source)
                    .map_err(|e| template_error(file, &e))?;
            }
        }
        for def in set.templates.values() {
            for (file, source) in &def.files {
                let registry = if file.ends_with(".html.hbs") {
                    &mut html
                } else {
                    &mut plain
                };
                registry
                    .register_template_string(&key(&def.name, file), source)
                    .map_err(|e| template_error(&set.file_path(&def.name, file), &e))?;
            }
        }
        let programme = set
            .facts
            .get("programme")
            .map(toml_to_json)
            .unwrap_or(Value::Object(Map::new()));
        let mut entities = HashMap::new();
        if let Some(toml::Value::Table(table)) = set.facts.get("entities") {
            for (code, facts) in table {
                for lang in Language::ALL {
                    entities.insert((code.clone(), lang), entity_json(code, facts, lang));
                }
            }
        }
        let keys: Vec<String> = set
            .templates
            .values()
            .flat_map(|def| def.files.keys().map(|file| key(&def.name, file)))
            .collect();
        let skeletons = Skeletons::new(&[&html, &plain], keys.iter().map(String::as_str));
        Ok(Renderer {
            set,
            html,
            plain,
            programme,
            entities,
            skeletons,
        })
    }

    pub fn templates(&self) -> &TemplateSet {
        &self.set
    }

    pub fn template(&self, name: &str) -> Result<&TemplateDef, RenderError> {
        self.set
            .get(name)
            .ok_or_else(|| RenderError::UnknownTemplate(name.to_string()))
    }

    /// Refuses a campaign whose variables do not cover what the template declares.
    pub fn check_vars(&self, template: &str, vars: &Value) -> Result<(), RenderError> {
        let def = self.template(template)?;
        for (name, spec) in &def.meta.variables {
            if vars.get(name).is_none_or(Value::is_null) {
                return Err(RenderError::MissingVariable {
                    template: template.to_string(),
                    name: name.clone(),
                    description: spec.description.clone(),
                });
            }
        }
        Ok(())
    }

    /// The sample values of a template's variables, for checks and previews.
    pub fn sample_vars(&self, template: &str) -> Result<Value, RenderError> {
        let def = self.template(template)?;
        let vars: Map<String, Value> = def
            .meta
            .variables
            .iter()
            .map(|(k, spec)| (k.clone(), toml_to_json(&spec.sample)))
            .collect();
        Ok(Value::Object(vars))
    }

    pub fn render_sms(
        &self,
        template: &str,
        mode: LangMode,
        recipient: &Recipient,
        vars: &Value,
    ) -> Result<RenderedSms, RenderError> {
        let def = self.with_channel(template, ChannelKind::Sms)?;
        let (langs, fell_back) = choose_languages(def, mode, &recipient.language);
        let mut texts = Vec::with_capacity(langs.len());
        for lang in &langs {
            let file = format!("sms.{lang}.hbs");
            let text = self.render_file(&self.plain, def, &file, *lang, recipient, vars, "")?;
            texts.push(text.trim().to_string());
        }
        let prepared = sms::prepare(&texts.join("\n\n"), def.meta.sms.transliterate);
        if prepared.info.segments > def.meta.sms.max_segments {
            let info = &prepared.info;
            return Err(RenderError::TooLong {
                file: self.set.file_path(
                    template,
                    &format!("sms.{}.hbs", langs.first().copied().unwrap_or_default()),
                ),
                segments: info.segments,
                units: info.units,
                unit: match info.encoding {
                    sms::SmsEncoding::Gsm7 => "septet",
                    sms::SmsEncoding::Ucs2 => "UTF-16 unit",
                },
                encoding: info.encoding.as_str(),
                max: def.meta.sms.max_segments,
            });
        }
        Ok(RenderedSms {
            text: prepared.text,
            info: prepared.info,
            language: language_label(&langs),
            fell_back,
        })
    }

    pub fn render_email(
        &self,
        template: &str,
        mode: LangMode,
        recipient: &Recipient,
        vars: &Value,
        unsubscribe_url: &str,
    ) -> Result<RenderedEmail, RenderError> {
        let def = self.with_channel(template, ChannelKind::Email)?;
        let (langs, fell_back) = choose_languages(def, mode, &recipient.language);
        let mut subjects = Vec::new();
        let mut texts = Vec::new();
        let mut htmls = Vec::new();
        for lang in &langs {
            let render = |registry, part: &str| {
                let file = format!("email.{lang}.{part}.hbs");
                self.render_file(
                    registry,
                    def,
                    &file,
                    *lang,
                    recipient,
                    vars,
                    unsubscribe_url,
                )
            };
            subjects.push(one_line(&render(&self.plain, "subject")?));
            texts.push(render(&self.plain, "txt")?.trim().to_string());
            htmls.push(render(&self.html, "html")?);
        }
        Ok(RenderedEmail {
            subject: subjects.join(" | "),
            text: texts
                .join("\n\n------------------------------------------------------------\n\n"),
            html: join_html(&htmls),
            language: language_label(&langs),
            fell_back,
        })
    }

    fn with_channel(
        &self,
        template: &str,
        channel: ChannelKind,
    ) -> Result<&TemplateDef, RenderError> {
        let def = self.template(template)?;
        if !def.meta.channels.contains(&channel) {
            return Err(RenderError::NoChannel {
                template: template.to_string(),
                channel,
                available: def
                    .meta
                    .channels
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(def)
    }

    /// One file of a template for a recipient, by class where the file allows
    /// it (see [`Skeletons`]).
    #[allow(clippy::too_many_arguments)]
    fn render_file(
        &self,
        registry: &Handlebars<'static>,
        def: &TemplateDef,
        file: &str,
        lang: Language,
        recipient: &Recipient,
        vars: &Value,
        unsubscribe_url: &str,
    ) -> Result<String, RenderError> {
        let key = key(&def.name, file);
        self.skeletons.render(
            &key,
            lang,
            recipient,
            vars,
            unsubscribe_url,
            |r, unsubscribe| {
                registry
                    .render_with_context(&key, &self.context(lang, r, vars, unsubscribe))
                    .map_err(|e| render_error(&self.set.file_path(&def.name, file), &e))
            },
        )
    }

    fn context(
        &self,
        lang: Language,
        recipient: &Recipient,
        vars: &Value,
        unsubscribe_url: &str,
    ) -> Context {
        let mut root = Map::with_capacity(6);
        root.insert("lang".into(), Value::String(lang.code().into()));
        root.insert(
            "contact".into(),
            serde_json::to_value(recipient).unwrap_or(Value::Null),
        );
        let entity = recipient
            .entity
            .as_ref()
            .and_then(|code| self.entities.get(&(code.clone(), lang)));
        if let Some(entity) = entity {
            root.insert("entity".into(), entity.clone());
        }
        root.insert("programme".into(), self.programme.clone());
        root.insert("vars".into(), vars.clone());
        root.insert(
            "unsubscribe_url".into(),
            Value::String(unsubscribe_url.into()),
        );
        Context::from(Value::Object(root))
    }
}

/// The registry key of a template file: `registro_abierto/sms.es`.
pub(super) fn key(template: &str, file: &str) -> String {
    format!("{template}/{}", file.trim_end_matches(".hbs"))
}

/// The languages to render and whether the contact's own had to be replaced.
fn choose_languages(
    def: &TemplateDef,
    mode: LangMode,
    contact_lang: &str,
) -> (Vec<Language>, bool) {
    let available = &def.meta.languages;
    let pick = |wanted: Language| -> (Vec<Language>, bool) {
        if available.contains(&wanted) {
            (vec![wanted], false)
        } else {
            let fallback = if available.contains(&Language::Es) {
                Language::Es
            } else {
                available.first().copied().unwrap_or(Language::Es)
            };
            (vec![fallback], true)
        }
    };
    match mode {
        LangMode::Contact => pick(Language::parse(contact_lang).unwrap_or(Language::Es)),
        LangMode::Es => pick(Language::Es),
        LangMode::En => pick(Language::En),
        LangMode::Both => {
            let langs: Vec<Language> = Language::ALL
                .into_iter()
                .filter(|l| available.contains(l))
                .collect();
            let fell_back = langs.len() < Language::ALL.len();
            (langs, fell_back)
        }
    }
}

fn language_label(langs: &[Language]) -> String {
    if langs.len() > 1 {
        "both".into()
    } else {
        langs.first().copied().unwrap_or_default().code().into()
    }
}

/// Joins full HTML documents into one: the first document keeps its head, the
/// bodies of the others follow it, separated by a rule.
fn join_html(docs: &[String]) -> String {
    let Some(first) = docs.first() else {
        return String::new();
    };
    if docs.len() == 1 {
        return first.clone();
    }
    let body = |doc: &str| -> String {
        let start = doc
            .find("<body")
            .and_then(|i| doc[i..].find('>').map(|j| i + j + 1));
        let end = doc.rfind("</body>");
        match (start, end) {
            (Some(s), Some(e)) if s <= e => doc[s..e].to_string(),
            _ => doc.to_string(),
        }
    };
    let rest: String = docs[1..]
        .iter()
        .map(|d| format!("<hr style=\"margin:32px 0\">\n{}", body(d)))
        .collect();
    match first.rfind("</body>") {
        Some(end) => format!("{}{rest}{}", &first[..end], &first[end..]),
        None => format!("{first}{rest}"),
    }
}

fn template_error(file: &str, e: &handlebars::TemplateError) -> RenderError {
    let at = e
        .pos()
        .map(|(l, c)| format!("line {l}, column {c}: "))
        .unwrap_or_default();
    RenderError::Template {
        file: file.to_string(),
        detail: format!("{at}{}", e.reason()),
    }
}

fn render_error(file: &str, e: &handlebars::RenderError) -> RenderError {
    let at = match (e.line_no, e.column_no) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        _ => String::new(),
    };
    let detail = match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => {
            format!("{{{{{path}}}}} is not available: a misspelt name, or a campaign variable not declared in meta.toml")
        }
        reason => reason.to_string(),
    };
    RenderError::Template {
        file: file.to_string(),
        detail: format!("{at}{detail}"),
    }
}

pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// `{{entity.*}}` for one language: `office` is `office_es` or `office_en`.
fn entity_json(code: &str, facts: &toml::Value, lang: Language) -> Value {
    let mut out = Map::new();
    out.insert("code".into(), Value::String(code.to_string()));
    if let toml::Value::Table(t) = facts {
        for (k, v) in t {
            match k.strip_suffix(&format!("_{}", lang.code())) {
                Some(base) => {
                    out.insert(base.to_string(), toml_to_json(v));
                }
                None => {
                    out.insert(k.clone(), toml_to_json(v));
                }
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
