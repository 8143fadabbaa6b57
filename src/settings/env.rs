//! The environment variables settings come from, captured once so that
//! resolving is a function of its inputs (and testable without touching the
//! process's environment).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::error::SettingsError;

/// systemd's `LoadCredential=` puts credentials in the directory this names.
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, OsString>,
}

/// Names only: the values hold passwords.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_tuple("Env").field(&names).finish()
    }
}

impl Env {
    /// The process's `AVISO_*` variables and `CREDENTIALS_DIRECTORY`.
    pub fn process() -> Env {
        Env::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            (name.starts_with("AVISO_") || name == CREDENTIALS_DIRECTORY).then_some((name, value))
        }))
    }

    pub fn from_vars<N, V>(vars: impl IntoIterator<Item = (N, V)>) -> Env
    where
        N: Into<String>,
        V: Into<OsString>,
    {
        Env {
            vars: vars
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value, if set and valid Unicode.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name)?.to_str()
    }

    pub fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(name).map(OsString::as_os_str)
    }

    /// A secret: `NAME` itself; or the contents of the file `NAME_FILE`
    /// names; or, under systemd (`LoadCredential=`), the credential named
    /// after it in `$CREDENTIALS_DIRECTORY` (`AVISO_SMTP_PASSWORD` →
    /// `smtp-password`), absent when the unit does not load it. Trimmed. A
    /// file that cannot be read is an error rather than "no secret": running
    /// without a password the operator meant to give fails later and less
    /// clearly.
    pub fn secret(&self, name: &str) -> Result<Option<String>, SettingsError> {
        if let Some(value) = self.var(name).filter(|v| !v.is_empty()) {
            return Ok(Some(value.to_string()));
        }
        let file_var = format!("{name}_FILE");
        let (var, path) = match self.var_os(&file_var).filter(|p| !p.is_empty()) {
            Some(path) => (file_var, PathBuf::from(path)),
            None => match self.credential_path(name) {
                Some(path) if path.exists() => (CREDENTIALS_DIRECTORY.to_string(), path),
                _ => return Ok(None),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::Secret {
            var,
            path: path.display().to_string(),
            source,
        })?;
        Ok(Some(text.trim().to_string()).filter(|s| !s.is_empty()))
    }

    /// Where systemd puts the credential for `AVISO_SOME_SECRET`: `some-secret`.
    fn credential_path(&self, name: &str) -> Option<PathBuf> {
        let dir = self
            .var_os(CREDENTIALS_DIRECTORY)
            .filter(|d| !d.is_empty())?;
        let id = name
            .strip_prefix("AVISO_")
            .unwrap_or(name)
            .to_ascii_lowercase()
            .replace('_', "-");
        Some(PathBuf::from(dir).join(id))
    }
}
