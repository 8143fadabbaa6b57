//! Rendering once per kind of recipient instead of once per recipient.
//!
//! A campaign renders the same template for every recipient, and most of the
//! output depends only on the language, the entity and a few contact fields
//! such as `kind`; what truly differs from one message to the next is a name
//! and a link. So for each *class* of recipients (the values of the fields the
//! template reads, and whether each per-recipient field is absent, empty or
//! set) handlebars renders once with markers in place of the per-recipient
//! values, and every message of that class is the result with the markers
//! replaced. At 100,000 e-mails this takes handlebars off the hot path
//! (a fifth of the worker's CPU time).
//!
//! It is only used where it gives exactly what handlebars would: the template
//! (and its partials) must use the per-recipient fields only as plain
//! `{{field}}` / `{{{field}}}` insertions or as the condition of `#if` /
//! `#unless`, which the class already decides. Anything else (a helper given a
//! name, `#each`, `#with`, `lookup`, `this`, `../`, decorators, indented
//! partials) makes that file render through handlebars every time, as before.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Handlebars, PathSeg, Template};

use super::error::RenderError;
use super::recipient::Recipient;
use crate::domain::Language;

/// The values that differ from one recipient to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Id,
    FirstName,
    LastName,
    FullName,
    Unsubscribe,
}

const SLOTS: [Slot; 5] = [
    Slot::Id,
    Slot::FirstName,
    Slot::LastName,
    Slot::FullName,
    Slot::Unsubscribe,
];

impl Slot {
    fn value<'a>(self, r: &'a Recipient, unsubscribe: &'a str) -> Option<&'a str> {
        match self {
            Slot::Id => Some(&r.id),
            Slot::FirstName => r.first_name.as_deref(),
            Slot::LastName => r.last_name.as_deref(),
            Slot::FullName => Some(&r.full_name),
            Slot::Unsubscribe => Some(unsubscribe),
        }
    }

    /// Private-use characters around the slot number, and an `&` that tells,
    /// once rendered, whether handlebars escaped the insertion (`&amp;`).
    fn marker(self) -> String {
        format!("{MARK_OPEN}{}&{MARK_CLOSE}", self as u8)
    }
}

const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

/// The low-variety contact fields a class is made of, when a template reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClassField {
    Kind,
    Entity,
    Country,
    Language,
    Credential,
    Population,
    Modality,
}

impl ClassField {
    fn value(self, r: &Recipient) -> Option<&str> {
        match self {
            ClassField::Kind => Some(&r.kind),
            ClassField::Entity => r.entity.as_deref(),
            ClassField::Country => r.country.as_deref(),
            ClassField::Language => Some(&r.language),
            ClassField::Credential => r.credential.as_deref(),
            ClassField::Population => r.population.as_deref(),
            ClassField::Modality => r.modality.as_deref(),
        }
    }
}

/// What rendering by class may do with a `contact.<field>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContactField {
    /// Few values: part of the class.
    Class(ClassField),
    /// Differs per recipient: a marker filled for each message.
    Slot(Slot),
}

/// The role of a field of `Recipient`, by the name templates use. A text
/// cached for a class is sent to every recipient of that class, so a field
/// must never be cached by default: the destructuring below names every field
/// of `Recipient`, and one added there does not compile until it is given a
/// role here. A name with no role (not a field, or a typo) makes the
/// template that reads it render for each message.
fn contact_field(name: &str) -> Option<ContactField> {
    let Recipient {
        id: _,
        kind: _,
        first_name: _,
        last_name: _,
        full_name: _,
        entity: _,
        country: _,
        language: _,
        credential: _,
        population: _,
        modality: _,
    } = Recipient::default();
    use ContactField::{Class, Slot as PerRecipient};
    Some(match name {
        "id" => PerRecipient(Slot::Id),
        "first_name" => PerRecipient(Slot::FirstName),
        "last_name" => PerRecipient(Slot::LastName),
        "full_name" => PerRecipient(Slot::FullName),
        "kind" => Class(ClassField::Kind),
        "entity" => Class(ClassField::Entity),
        "country" => Class(ClassField::Country),
        "language" => Class(ClassField::Language),
        "credential" => Class(ClassField::Credential),
        "population" => Class(ClassField::Population),
        "modality" => Class(ClassField::Modality),
        _ => return None,
    })
}

/// What a file's output can depend on besides the per-recipient slots and the
/// language (always part of a class).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Usage {
    fields: Vec<ClassField>,
    /// `{{entity.*}}`: chosen by the contact's entity.
    entity: bool,
    /// `{{vars.*}}`: the campaign's variables.
    vars: bool,
}

impl Usage {
    fn add(&mut self, field: ClassField) {
        if !self.fields.contains(&field) {
            self.fields.push(field);
        }
    }
}

/// Bytes of rendered text kept for all classes together: past this, further
/// classes render through handlebars (slower, never wrong).
const CACHE_BYTES: usize = 8 << 20;

/// Per-file class caches of a renderer.
pub(super) struct Skeletons {
    files: HashMap<String, FileSkeletons>,
    cached_bytes: std::sync::atomic::AtomicUsize,
}

struct FileSkeletons {
    usage: Usage,
    classes: RwLock<HashMap<String, Arc<Entry>>>,
}

enum Entry {
    Ready(Skeleton),
    /// Every recipient of the class fails the same way (strict mode).
    Failed(RenderError),
    /// The probe did not come back as expected: render each message.
    Direct,
}

/// Rendered text with the places where per-recipient values go.
#[derive(Debug, PartialEq, Eq)]
struct Skeleton {
    pieces: Vec<Piece>,
    text_len: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot { slot: Slot, escaped: bool },
}

impl Skeletons {
    /// Finds, among the registered files, those that can be rendered by class.
    pub(super) fn new<'a>(
        registries: &[&Handlebars<'static>],
        files: impl IntoIterator<Item = &'a str>,
    ) -> Skeletons {
        let mut out = HashMap::new();
        for key in files {
            for registry in registries {
                if let Some(template) = registry.get_template(key) {
                    let mut scan = Scan {
                        registry,
                        usage: Usage::default(),
                        partials: Vec::new(),
                    };
                    if scan.template(template, Scope::Root) {
                        out.insert(
                            key.to_string(),
                            FileSkeletons {
                                usage: scan.usage,
                                classes: RwLock::new(HashMap::new()),
                            },
                        );
                    }
                }
            }
        }
        Skeletons {
            files: out,
            cached_bytes: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The file rendered for `recipient`: from its class when the file allows
    /// it, else by `render` (handlebars) directly. `render` is given the
    /// recipient and unsubscribe link to render with.
    pub(super) fn render(
        &self,
        key: &str,
        lang: Language,
        recipient: &Recipient,
        vars: &serde_json::Value,
        unsubscribe: &str,
        render: impl Fn(&Recipient, &str) -> Result<String, RenderError>,
    ) -> Result<String, RenderError> {
        let Some(file) = self.files.get(key) else {
            return render(recipient, unsubscribe);
        };
        let class = class_key(&file.usage, lang, recipient, vars, unsubscribe);
        let cached = file
            .classes
            .read()
            .ok()
            .and_then(|classes| classes.get(&class).cloned());
        let entry = match cached {
            Some(entry) => entry,
            // Full: a probe would only be thrown away; render this one directly.
            None if self.cached_bytes.load(std::sync::atomic::Ordering::Relaxed) >= CACHE_BYTES => {
                return render(recipient, unsubscribe);
            }
            None => {
                let entry = Arc::new(self.probe(recipient, unsubscribe, &render));
                let bytes = match entry.as_ref() {
                    Entry::Ready(s) => s.text_len,
                    _ => 0,
                };
                let total = self
                    .cached_bytes
                    .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                if total + bytes <= CACHE_BYTES {
                    if let Ok(mut classes) = file.classes.write() {
                        classes.insert(class, entry.clone());
                    }
                }
                entry
            }
        };
        match entry.as_ref() {
            Entry::Ready(skeleton) => Ok(skeleton.fill(recipient, unsubscribe)),
            Entry::Failed(e) => Err(e.clone()),
            Entry::Direct => render(recipient, unsubscribe),
        }
    }

    /// Renders the class of `recipient` with markers for its slots.
    fn probe(
        &self,
        recipient: &Recipient,
        unsubscribe: &str,
        render: &impl Fn(&Recipient, &str) -> Result<String, RenderError>,
    ) -> Entry {
        let marked = |slot: Slot| {
            slot.value(recipient, unsubscribe).map(|v| {
                if v.is_empty() {
                    String::new()
                } else {
                    slot.marker()
                }
            })
        };
        let probe = Recipient {
            id: marked(Slot::Id).unwrap_or_default(),
            first_name: marked(Slot::FirstName),
            last_name: marked(Slot::LastName),
            full_name: marked(Slot::FullName).unwrap_or_default(),
            ..recipient.clone()
        };
        let unsubscribe = marked(Slot::Unsubscribe).unwrap_or_default();
        match render(&probe, &unsubscribe) {
            Ok(text) => Skeleton::parse(&text).map_or(Entry::Direct, Entry::Ready),
            Err(e) => Entry::Failed(e),
        }
    }
}

/// The class of a recipient for a file: everything its output depends on
/// except the slot values themselves. Each part is length-prefixed, so no
/// value can pass for another.
fn class_key(
    usage: &Usage,
    lang: Language,
    r: &Recipient,
    vars: &serde_json::Value,
    unsubscribe: &str,
) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(64);
    let mut part = |value: Option<&str>| {
        match value {
            Some(v) => {
                let _ = write!(key, "{}:{v}", v.len());
            }
            None => key.push('-'),
        };
    };
    part(Some(lang.code()));
    for slot in SLOTS {
        part(Some(match slot.value(r, unsubscribe) {
            None => "absent",
            Some("") => "empty",
            Some(_) => "set",
        }));
    }
    for field in &usage.fields {
        part(field.value(r));
    }
    if usage.entity {
        part(r.entity.as_deref());
    }
    if usage.vars {
        part(Some(&vars.to_string()));
    }
    key
}

impl Skeleton {
    /// Splits a probe's output at its markers; `None` if the output holds a
    /// marker character that is not one of ours (then the file renders directly).
    fn parse(rendered: &str) -> Option<Skeleton> {
        let mut pieces = Vec::new();
        let mut text_len = 0;
        let mut rest = rendered;
        while let Some(start) = rest.find(MARK_OPEN) {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
                text_len += start;
            }
            let after = &rest[start + MARK_OPEN.len_utf8()..];
            let end = after.find(MARK_CLOSE)?;
            let inside = &after[..end];
            let (number, escaped) = if let Some(n) = inside.strip_suffix("&amp;") {
                (n, true)
            } else {
                (inside.strip_suffix('&')?, false)
            };
            let slot = *SLOTS.iter().find(|s| (**s as u8).to_string() == number)?;
            pieces.push(Piece::Slot { slot, escaped });
            rest = &after[end + MARK_CLOSE.len_utf8()..];
        }
        if rest.contains(MARK_CLOSE) {
            return None;
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
            text_len += rest.len();
        }
        Some(Skeleton { pieces, text_len })
    }

    fn fill(&self, r: &Recipient, unsubscribe: &str) -> String {
        let mut out = String::with_capacity(self.text_len + 64);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot { slot, escaped } => {
                    let value = slot.value(r, unsubscribe).unwrap_or_default();
                    if *escaped {
                        out.push_str(&handlebars::html_escape(value));
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
        out
    }
}

/// Where a reference is read from: the root context, or the item of an
/// `#each` (which is campaign data: no slot can be reached from it without
/// `../` or `@root`, which are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Root,
    Item,
}

/// Walks a file and the partials it includes.
struct Scan<'a> {
    registry: &'a Handlebars<'static>,
    usage: Usage,
    /// The partials being scanned, so one that includes itself is refused
    /// instead of followed forever.
    partials: Vec<String>,
}

impl Scan<'_> {
    /// Whether `template` uses the slots only in ways a class decides, noting
    /// what else its output depends on.
    fn template(&mut self, template: &Template, scope: Scope) -> bool {
        template
            .elements
            .iter()
            .all(|element| self.element(element, scope))
    }

    fn element(&mut self, element: &TemplateElement, scope: Scope) -> bool {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => true,
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                if h.params.is_empty() && h.hash.is_empty() {
                    // `{{name}}`: a value printed, maybe a slot.
                    self.reference(&h.name, scope, true)
                } else {
                    self.helper(h, scope)
                }
            }
            TemplateElement::HelperBlock(h) => {
                let Parameter::Name(name) = &h.name else {
                    return false;
                };
                let inner = match name.as_str() {
                    "if" | "unless" => scope,
                    "each" => Scope::Item,
                    _ => return false,
                };
                let simple = h.params.len() == 1 && h.hash.is_empty() && h.block_param.is_none();
                // A slot's truthiness is part of the class; a slot is never a list.
                simple
                    && self.value(&h.params[0], scope, inner == scope)
                    && h.template.as_ref().is_none_or(|t| self.template(t, inner))
                    && h.inverse.as_ref().is_none_or(|t| self.template(t, scope))
            }
            TemplateElement::PartialExpression(d) => {
                let Parameter::Name(name) = &d.name else {
                    return false;
                };
                let plain = d.params.is_empty()
                    && d.hash.is_empty()
                    && d.template.is_none()
                    && d.indent.as_deref().unwrap_or_default().is_empty();
                if !plain || self.partials.contains(name) {
                    return false;
                }
                let Some(partial) = self.registry.get_template(name) else {
                    return false;
                };
                self.partials.push(name.clone());
                let ok = self.template(partial, scope);
                self.partials.pop();
                ok
            }
            _ => false,
        }
    }

    /// A helper call: none of its inputs may be a slot.
    fn helper(&mut self, h: &HelperTemplate, scope: Scope) -> bool {
        matches!(h.name, Parameter::Name(_))
            && h.params.iter().all(|p| self.value(p, scope, false))
            && h.hash.values().all(|p| self.value(p, scope, false))
    }

    /// A helper input or a block's condition: a literal, a helper call, or a
    /// reference (a slot only where `slot_ok`).
    fn value(&mut self, p: &Parameter, scope: Scope, slot_ok: bool) -> bool {
        match p {
            Parameter::Literal(_) => true,
            Parameter::Subexpression(sub) => match sub.as_element() {
                TemplateElement::Expression(h) => self.helper(h, scope),
                _ => false,
            },
            other => self.reference(other, scope, slot_ok),
        }
    }

    /// A value read from the context. Slots are allowed where `slot_ok`; the
    /// whole context or `contact`, and `../` or `@root`, never are.
    fn reference(&mut self, p: &Parameter, scope: Scope, slot_ok: bool) -> bool {
        let segments: Vec<&str> = match p {
            Parameter::Name(name) => vec![name.as_str()],
            Parameter::Path(handlebars::Path::Relative((segs, _))) => {
                let mut names = Vec::with_capacity(segs.len());
                for seg in segs {
                    match seg {
                        PathSeg::Named(n) => names.push(n.as_str()),
                        _ => return false,
                    }
                }
                names
            }
            // `@index`, `@key`…: only an `#each` sets them.
            Parameter::Path(handlebars::Path::Local(_)) => return scope == Scope::Item,
            _ => return false,
        };
        if scope == Scope::Item {
            return true;
        }
        let usage = &mut self.usage;
        match segments.as_slice() {
            ["contact", field, rest @ ..] => match contact_field(field) {
                Some(ContactField::Class(field)) => {
                    usage.add(field);
                    true
                }
                Some(ContactField::Slot(_)) => slot_ok && rest.is_empty(),
                None => false,
            },
            ["contact"] | [] => false,
            ["unsubscribe_url", rest @ ..] => slot_ok && rest.is_empty(),
            ["entity", ..] => {
                usage.entity = true;
                true
            }
            ["vars", ..] => {
                usage.vars = true;
                true
            }
            [root, ..] => !root.starts_with('@'),
        }
    }
}

/// Which of `keys` render by class, for tests.
#[cfg(test)]
pub(super) fn usable(skeletons: &Skeletons, key: &str) -> bool {
    skeletons.files.contains_key(key)
}

#[cfg(test)]
mod tests;
