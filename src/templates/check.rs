//! `aviso templates check`: everything that can be wrong with a template is
//! found here, before a campaign is created, and named by file.

use std::collections::BTreeSet;
use std::fmt;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::Path as HbPath;
use serde_json::Value;

use super::render::{toml_to_json, Renderer};
use super::{Recipient, RenderError};
use super::{TemplateDef, TemplateSet};
use crate::domain::{ChannelKind, ContactKind, Entity};

/// One thing wrong, and the file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

const CONTACT_FIELDS: &[&str] = &[
    "id",
    "kind",
    "first_name",
    "last_name",
    "full_name",
    "entity",
    "country",
    "language",
    "credential",
    "population",
    "modality",
];
const ROOTS: &[&str] = &[
    "lang",
    "contact",
    "entity",
    "programme",
    "vars",
    "unsubscribe_url",
];
/// Helpers and keywords that may appear where a variable name would.
const HELPERS: &[&str] = &[
    "if",
    "unless",
    "each",
    "with",
    "lookup",
    "log",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "and",
    "or",
    "not",
    "len",
    "date",
    "month_name",
    "else",
    "this",
];

/// Checks `only` (or every template) of the set; an empty list means all is well.
pub fn check(set: &TemplateSet, only: Option<&str>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(name) = only {
        if set.get(name).is_none() {
            problems.push(Problem {
                file: format!("{}/{name}", set.origin),
                message: format!(
                    "no such template (available: {})",
                    set.templates.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
            return problems;
        }
    }
    for (name, (file, source)) in &set.partials {
        if let Err(e) = Template::compile(source) {
            problems.push(Problem {
                file: file.clone(),
                message: format!("partial {name}: {}", e.reason()),
            });
        }
    }
    let programme_keys: BTreeSet<String> = match set.facts.get("programme") {
        Some(toml::Value::Table(t)) => t.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let entity_keys: BTreeSet<String> = match set.facts.get("entities") {
        Some(toml::Value::Table(entities)) => entities
            .values()
            .filter_map(|v| v.as_table())
            .flat_map(|t| t.keys())
            .map(|k| {
                k.trim_end_matches("_es")
                    .trim_end_matches("_en")
                    .to_string()
            })
            .chain(["code".to_string()])
            .collect(),
        _ => BTreeSet::new(),
    };
    for def in set
        .templates
        .values()
        .filter(|d| only.is_none_or(|n| n == d.name))
    {
        let fields = Fields {
            programme: &programme_keys,
            entity: &entity_keys,
            vars: def.meta.variables.keys().cloned().collect(),
        };
        check_files(set, def, &fields, &mut problems);
    }
    if problems.is_empty() {
        check_renders(set, only, &mut problems);
    }
    problems
}

struct Fields<'a> {
    programme: &'a BTreeSet<String>,
    entity: &'a BTreeSet<String>,
    vars: BTreeSet<String>,
}

/// Files present, parseable, and using only what exists or is declared.
fn check_files(
    set: &TemplateSet,
    def: &TemplateDef,
    fields: &Fields<'_>,
    problems: &mut Vec<Problem>,
) {
    let path = |file: &str| set.file_path(&def.name, file);
    let mut expected = BTreeSet::new();
    if def.meta.languages.is_empty() {
        problems.push(Problem {
            file: path("meta.toml"),
            message: "languages is empty: list es, en or both".into(),
        });
    }
    if def.meta.channels.is_empty() {
        problems.push(Problem {
            file: path("meta.toml"),
            message: "channels is empty: list sms, email or both".into(),
        });
    }
    for channel in &def.meta.channels {
        for lang in &def.meta.languages {
            for file in TemplateDef::files_for(*channel, lang.code()) {
                if !def.files.contains_key(&file) {
                    problems.push(Problem {
                        file: path(&file),
                        message: format!(
                            "missing: meta.toml promises {channel} in {lang}, so this file must exist"
                        ),
                    });
                }
                expected.insert(file);
            }
        }
    }
    let mut used_vars = BTreeSet::new();
    for (file, source) in &def.files {
        if !expected.contains(file) {
            problems.push(Problem {
                file: path(file),
                message: format!(
                    "unexpected file: for the channels ({}) and languages ({}) in meta.toml the files are {}",
                    join(&def.meta.channels),
                    join(&def.meta.languages),
                    expected.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
            continue;
        }
        match Template::compile(source) {
            Err(e) => {
                let at = e
                    .pos()
                    .map(|(l, c)| format!("line {l}, column {c}: "))
                    .unwrap_or_default();
                problems.push(Problem {
                    file: path(file),
                    message: format!("{at}{}", e.reason()),
                });
            }
            Ok(template) => {
                let mut refs = Vec::new();
                collect_refs(&template, 0, &mut refs);
                for r in refs {
                    if let Some(message) = unknown_reference(&r, fields) {
                        let line = line_of(source, &r.raw);
                        problems.push(Problem {
                            file: path(file),
                            message: format!("line {line}: {message}"),
                        });
                    }
                    if let Some(var) = r.raw.strip_prefix("vars.") {
                        used_vars.insert(var.split(['.', '/']).next().unwrap_or(var).to_string());
                    }
                }
                if file.starts_with("email.")
                    && file.contains(".html.")
                    && !source.contains("{{> footer")
                {
                    problems.push(Problem {
                        file: path(file),
                        message: "no footer: e-mails must include the unsubscribe footer, e.g. {{> footer_es_html}}".into(),
                    });
                }
                if file.ends_with(".txt.hbs") && !source.contains("{{> footer") {
                    problems.push(Problem {
                        file: path(file),
                        message: "no footer: e-mails must include the unsubscribe footer, e.g. {{> footer_es_txt}}".into(),
                    });
                }
            }
        }
    }
    for declared in &fields.vars {
        if !used_vars.contains(declared) {
            problems.push(Problem {
                file: path("meta.toml"),
                message: format!(
                    "variable {declared:?} is declared but no file uses {{{{vars.{declared}}}}}"
                ),
            });
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A variable reference found in a template, and whether it sits inside a block
/// that changes what plain names mean (`each`, `with`).
struct Reference {
    raw: String,
    scoped: bool,
}

fn collect_refs(template: &Template, depth: usize, out: &mut Vec<Reference>) {
    for element in &template.elements {
        match element {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                // `{{name}}` with no parameters is a variable; with parameters, a helper call.
                if h.params.is_empty() && h.hash.is_empty() {
                    param_refs(&h.name, depth, out);
                }
                for p in h.params.iter().chain(h.hash.values()) {
                    param_refs(p, depth, out);
                }
            }
            TemplateElement::HelperBlock(h) => {
                for p in h.params.iter().chain(h.hash.values()) {
                    param_refs(p, depth, out);
                }
                let name = match &h.name {
                    Parameter::Name(n) => n.as_str(),
                    _ => "",
                };
                let inner = if matches!(name, "each" | "with") {
                    depth + 1
                } else {
                    depth
                };
                if let Some(t) = &h.template {
                    collect_refs(t, inner, out);
                }
                if let Some(t) = &h.inverse {
                    collect_refs(t, depth, out);
                }
            }
            _ => {}
        }
    }
}

fn param_refs(p: &Parameter, depth: usize, out: &mut Vec<Reference>) {
    match p {
        Parameter::Name(n) => out.push(Reference {
            raw: n.clone(),
            scoped: depth > 0,
        }),
        Parameter::Path(HbPath::Relative((_, raw))) => out.push(Reference {
            raw: raw.clone(),
            scoped: depth > 0,
        }),
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(h) = sub.element.as_ref() {
                for p in h.params.iter().chain(h.hash.values()) {
                    param_refs(p, depth, out);
                }
            }
        }
        _ => {}
    }
}

/// Why a reference cannot resolve, if it cannot.
fn unknown_reference(r: &Reference, fields: &Fields<'_>) -> Option<String> {
    let raw = r.raw.trim_start_matches("@root.");
    let mut parts = raw.split(['.', '/']);
    let root = parts.next().unwrap_or("");
    let field = parts.next();
    if HELPERS.contains(&root) || root.starts_with('@') || root == ".." || root.is_empty() {
        return None;
    }
    let known = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
    match (root, field) {
        ("contact", Some(f)) if !CONTACT_FIELDS.contains(&f) => Some(format!(
            "{{{{{raw}}}}}: contacts have no field {f:?} (they have {})",
            CONTACT_FIELDS.join(", ")
        )),
        ("entity", Some(f)) if !fields.entity.contains(f) => Some(format!(
            "{{{{{raw}}}}}: entities.toml gives entities no {f:?} (it gives {})",
            known(fields.entity)
        )),
        ("programme", Some(f)) if !fields.programme.contains(f) => Some(format!(
            "{{{{{raw}}}}}: entities.toml [programme] has no {f:?}"
        )),
        ("vars", Some(f)) if !fields.vars.contains(f) => Some(format!(
            "{{{{{raw}}}}}: campaign variable {f:?} is not declared in meta.toml [variables.{f}]"
        )),
        _ if ROOTS.contains(&root) => None,
        // Inside `each`/`with`, plain names are fields of the current item.
        _ if r.scoped => None,
        _ => Some(format!(
            "{{{{{raw}}}}} is not a known variable (use one of {})",
            ROOTS.join(", ")
        )),
    }
}

/// The first line that mentions `needle`, 1-based.
fn line_of(source: &str, needle: &str) -> usize {
    source
        .lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// Renders every template with the sample contacts (every entity and modality
/// for citizens) and its sample variables, the way a campaign would.
fn check_renders(set: &TemplateSet, only: Option<&str>, problems: &mut Vec<Problem>) {
    let renderer = match Renderer::new(set.clone()) {
        Ok(r) => r,
        Err(e) => {
            problems.push(problem_of(&e, &set.origin));
            return;
        }
    };
    let mut seen = BTreeSet::new();
    for def in set
        .templates
        .values()
        .filter(|d| only.is_none_or(|n| n == d.name))
    {
        let vars: Value = def
            .meta
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), toml_to_json(&v.sample)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        for recipient in sample_recipients(set, def.meta.audience) {
            for lang in &def.meta.languages {
                let mut who = recipient.clone();
                who.language = lang.code().to_string();
                let mode = match def.meta.default_lang {
                    super::LangMode::Both => super::LangMode::Both,
                    _ => super::LangMode::Contact,
                };
                for channel in &def.meta.channels {
                    let outcome = match channel {
                        ChannelKind::Sms => renderer
                            .render_sms(&def.name, mode, &who, &vars)
                            .map(|_| ()),
                        ChannelKind::Email => {
                            let url = "https://example.invalid/unsubscribe/CHECK";
                            renderer
                                .render_email(&def.name, mode, &who, &vars, url)
                                .and_then(|m| {
                                    if m.text.contains(url) && m.html.contains(url) {
                                        Ok(())
                                    } else {
                                        Err(RenderError::Template {
                                            file: set.file_path(&def.name, &format!("email.{lang}.*.hbs")),
                                            detail: "the rendered e-mail has no unsubscribe link ({{unsubscribe_url}}) in both parts".into(),
                                        })
                                    }
                                })
                        }
                    };
                    if let Err(e) = outcome {
                        let p = problem_of(&e, &set.origin);
                        if seen.insert(p.to_string()) {
                            problems.push(Problem {
                                message: format!(
                                    "{} (sample contact {}, {})",
                                    p.message,
                                    describe(&who),
                                    lang
                                ),
                                ..p
                            });
                        }
                    }
                }
            }
        }
    }
}

fn describe(r: &Recipient) -> String {
    match (&r.entity, &r.modality) {
        (Some(e), Some(m)) => format!("{} {e} {m}", r.kind),
        (Some(e), None) => format!("{} {e}", r.kind),
        _ => r.kind.clone(),
    }
}

fn problem_of(e: &RenderError, origin: &str) -> Problem {
    match e {
        RenderError::Template { file, detail } => Problem {
            file: file.clone(),
            message: detail.clone(),
        },
        RenderError::TooLong { file, .. } => Problem {
            file: file.clone(),
            message: e
                .to_string()
                .trim_start_matches(&format!("{file}: "))
                .to_string(),
        },
        other => Problem {
            file: origin.to_string(),
            message: other.to_string(),
        },
    }
}

/// The sample contacts of `samples.toml`, multiplied over what changes the text.
fn sample_recipients(set: &TemplateSet, audience: Option<ContactKind>) -> Vec<Recipient> {
    let mut out = Vec::new();
    let table = |k: &str| {
        set.samples
            .get(k)
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default()
    };
    if audience != Some(ContactKind::Organization) {
        let base = Recipient::from_sample(&table("citizen"));
        for entity in Entity::ALL {
            for modality in [Some("postal"), Some("electronica"), None] {
                let mut r = base.clone();
                r.entity = Some(entity.code().to_string());
                r.modality = modality.map(str::to_string);
                out.push(r);
            }
        }
    }
    if audience != Some(ContactKind::Citizen) {
        out.push(Recipient::from_sample(&table("organization")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Language;

    #[test]
    fn the_shipped_templates_pass() {
        let set = TemplateSet::built_in().unwrap();
        let problems = check(&set, None);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn languages_of_a_channel() {
        assert_eq!(
            TemplateDef::files_for(ChannelKind::Email, Language::En.code()),
            [
                "email.en.subject.hbs",
                "email.en.html.hbs",
                "email.en.txt.hbs"
            ]
        );
    }
}
