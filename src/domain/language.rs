use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{fold, Invalid};

/// The language a contact reads: Spanish (the default) or English.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum Language {
    #[default]
    Es,
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Es, Language::En];

    pub fn parse(input: &str) -> Result<Language, Invalid> {
        match fold(input).as_str() {
            "es" | "esp" | "spa" | "espanol" | "spanish" => Ok(Language::Es),
            "en" | "eng" | "ingles" | "english" => Ok(Language::En),
            _ => Err(Invalid::new(format!(
                "unknown language {:?}: expected es or en",
                input.trim()
            ))),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::En => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Language::parse(s)
    }
}

impl TryFrom<String> for Language {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Language::parse(&s)
    }
}

impl From<Language> for String {
    fn from(l: Language) -> String {
        l.code().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive() {
        assert_eq!(Language::parse("ES"), Ok(Language::Es));
        assert_eq!(Language::parse(" en "), Ok(Language::En));
        assert_eq!(Language::parse("Español"), Ok(Language::Es));
        assert!(Language::parse("fr").is_err());
    }
}
