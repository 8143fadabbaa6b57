//! Bilingual message templates: where they come from (`templates/` or the copy
//! built into the binary), what each one declares (`meta.toml`), how they are
//! rendered and checked, and how SMS text is measured.

mod check;
mod email;
mod error;
mod meta;
mod recipient;
mod render;
mod skeleton;
pub mod sms;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

pub use check::{check, Problem};
pub use email::{
    build_email, Attachment, AttachmentError, EmailHeaders, EmailSettings, DEFAULT_ATTACHMENT_LIMIT,
};
pub use error::RenderError;
pub use meta::{LangMode, Meta, SmsOptions, VariableSpec};
pub use recipient::Recipient;
pub use render::{long_date, toml_to_json, RenderedEmail, RenderedSms, Renderer};

use crate::domain::ChannelKind;

/// The shipped templates, so `aviso demo` works from any directory.
static BUILT_IN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// One template: its declaration and the sources of its files.
#[derive(Debug, Clone)]
pub struct TemplateDef {
    pub name: String,
    pub meta: Meta,
    /// File name (`sms.es.hbs`) → source.
    pub files: BTreeMap<String, String>,
}

impl TemplateDef {
    /// The file names a channel needs in a language.
    pub fn files_for(channel: ChannelKind, lang: &str) -> Vec<String> {
        match channel {
            ChannelKind::Sms => vec![format!("sms.{lang}.hbs")],
            ChannelKind::Email => ["subject", "html", "txt"]
                .iter()
                .map(|part| format!("email.{lang}.{part}.hbs"))
                .collect(),
        }
    }
}

/// Everything under a templates directory, read and parsed.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    /// Where it came from, for messages: a directory, or "built-in templates".
    pub origin: String,
    pub templates: BTreeMap<String, TemplateDef>,
    /// Partial name (`footer_es_html`) → (file, source).
    pub partials: BTreeMap<String, (String, String)>,
    /// `entities.toml`: `[programme]` and `[entities.*]`.
    pub facts: toml::Table,
    /// `samples.toml`: `[citizen]` and `[organization]` sample contacts.
    pub samples: toml::Table,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {detail}")]
pub struct LoadError {
    pub file: String,
    pub detail: String,
}

impl TemplateSet {
    /// The templates built into this binary.
    pub fn built_in() -> Result<TemplateSet, LoadError> {
        let mut files = BTreeMap::new();
        collect_embedded(&BUILT_IN, &mut files);
        TemplateSet::from_files("built-in templates", files)
    }

    /// The templates of a directory, e.g. `./templates`.
    pub fn from_dir(dir: &Path) -> Result<TemplateSet, LoadError> {
        let mut files = BTreeMap::new();
        collect_dir(dir, dir, &mut files)?;
        TemplateSet::from_files(&dir.display().to_string(), files)
    }

    /// Parses a set of (relative path → text) files.
    fn from_files(
        origin: &str,
        files: BTreeMap<PathBuf, String>,
    ) -> Result<TemplateSet, LoadError> {
        let shown = |p: &Path| format!("{origin}/{}", p.display());
        let table = |name: &str| -> Result<toml::Table, LoadError> {
            let path = PathBuf::from(name);
            let text = files.get(&path).ok_or_else(|| LoadError {
                file: shown(&path),
                detail: "missing".into(),
            })?;
            toml::from_str(text).map_err(|e| LoadError {
                file: shown(&path),
                detail: e.to_string().trim().replace('\n', " "),
            })
        };
        let facts = table("entities.toml")?;
        let samples = table("samples.toml")?;
        let mut templates: BTreeMap<String, TemplateDef> = BTreeMap::new();
        let mut partials = BTreeMap::new();
        for (path, text) in &files {
            let parts: Vec<&str> = path.iter().filter_map(|s| s.to_str()).collect();
            match parts.as_slice() {
                ["partials", file] => {
                    if let Some(stem) = file.strip_suffix(".hbs") {
                        partials.insert(stem.replace('.', "_"), (shown(path), text.clone()));
                    }
                }
                [name, "meta.toml"] => {
                    let meta: Meta = toml::from_str(text).map_err(|e| LoadError {
                        file: shown(path),
                        detail: e.to_string().trim().replace('\n', " "),
                    })?;
                    entry(&mut templates, name).meta = meta;
                }
                [name, file] if file.ends_with(".hbs") => {
                    entry(&mut templates, name)
                        .files
                        .insert(file.to_string(), text.clone());
                }
                _ => {}
            }
        }
        for def in templates.values() {
            if !files.contains_key(&PathBuf::from(&def.name).join("meta.toml")) {
                return Err(LoadError {
                    file: format!("{origin}/{}/meta.toml", def.name),
                    detail: "missing: every template needs a meta.toml".into(),
                });
            }
        }
        Ok(TemplateSet {
            origin: origin.to_string(),
            templates,
            partials,
            facts,
            samples,
        })
    }

    pub fn get(&self, name: &str) -> Option<&TemplateDef> {
        self.templates.get(name)
    }

    /// `templates/<name>/<file>` as people see it in messages.
    pub fn file_path(&self, template: &str, file: &str) -> String {
        format!("{}/{template}/{file}", self.origin)
    }
}

/// The template called `name`, created empty on first sight.
fn entry<'a>(templates: &'a mut BTreeMap<String, TemplateDef>, name: &str) -> &'a mut TemplateDef {
    templates
        .entry(name.to_string())
        .or_insert_with(|| TemplateDef {
            name: name.to_string(),
            meta: Meta::default(),
            files: BTreeMap::new(),
        })
}

fn collect_embedded(dir: &Dir<'_>, out: &mut BTreeMap<PathBuf, String>) {
    for file in dir.files() {
        if let Some(text) = file.contents_utf8() {
            out.insert(file.path().to_path_buf(), text.to_string());
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn collect_dir(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<PathBuf, String>,
) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError {
        file: dir.display().to_string(),
        detail: format!("cannot read the templates directory: {e}"),
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_dir(root, &path, out)?;
            continue;
        }
        let wanted = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("hbs" | "toml")
        );
        if !wanted {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| LoadError {
            file: path.display().to_string(),
            detail: format!("cannot read (templates must be UTF-8): {e}"),
        })?;
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        out.insert(relative, text);
    }
    Ok(())
}

/// Runs of whitespace and control characters (CR, LF) made one space: a
/// subject or a display name is one line, whatever a variable held, so no
/// CR/LF reaches a header.
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
