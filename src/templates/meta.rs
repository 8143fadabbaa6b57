//! `meta.toml`: what a template is for and what it needs.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{ChannelKind, ContactKind, Invalid, Language};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub description: String,
    #[serde(default = "both_channels")]
    pub channels: Vec<ChannelKind>,
    /// Who the template is written for; `None` means anyone.
    #[serde(default)]
    pub audience: Option<ContactKind>,
    /// The language rule when a campaign does not choose one.
    #[serde(default)]
    pub default_lang: LangMode,
    /// The languages the template is written in; other contacts fall back to Spanish.
    #[serde(default = "both_languages")]
    pub languages: Vec<Language>,
    #[serde(default)]
    pub sms: SmsOptions,
    /// Campaign variables (`{{vars.NAME}}`), each with a sample for checks and previews.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableSpec>,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            description: String::new(),
            channels: both_channels(),
            audience: None,
            default_lang: LangMode::Contact,
            languages: both_languages(),
            sms: SmsOptions::default(),
            variables: BTreeMap::new(),
        }
    }
}

fn both_channels() -> Vec<ChannelKind> {
    vec![ChannelKind::Sms, ChannelKind::Email]
}

fn both_languages() -> Vec<Language> {
    vec![Language::Es, Language::En]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsOptions {
    /// A rendered SMS longer than this many parts is refused (cost and readability).
    #[serde(default = "three")]
    pub max_segments: usize,
    /// Map á→a and similar so Spanish text stays in GSM-7 (160 characters a part
    /// instead of 70); characters without a faithful mapping are kept.
    #[serde(default)]
    pub transliterate: bool,
}

fn three() -> usize {
    3
}

impl Default for SmsOptions {
    fn default() -> Self {
        SmsOptions {
            max_segments: 3,
            transliterate: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    #[serde(default)]
    pub description: String,
    /// Used by `templates check` and `templates preview`; any TOML value.
    pub sample: toml::Value,
}

/// Which language a message is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LangMode {
    /// The contact's own language.
    #[default]
    Contact,
    Es,
    En,
    /// One bilingual message, Spanish first.
    Both,
}

impl LangMode {
    pub fn parse(s: &str) -> Result<LangMode, Invalid> {
        match s.trim().to_ascii_lowercase().as_str() {
            "contact" => Ok(LangMode::Contact),
            "es" => Ok(LangMode::Es),
            "en" => Ok(LangMode::En),
            "both" => Ok(LangMode::Both),
            _ => Err(Invalid::new(format!(
                "unknown language choice {s:?}: use contact, es, en or both"
            ))),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            LangMode::Contact => "contact",
            LangMode::Es => "es",
            LangMode::En => "en",
            LangMode::Both => "both",
        }
    }
}

impl fmt::Display for LangMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
