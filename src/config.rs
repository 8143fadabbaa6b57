//! `aviso.toml`: where the database is, where templates live, which providers to
//! use. Every setting has a default that works with no file at all; command-line
//! flags and `AVISO_*` variables override the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://aviso.db";
pub const DEFAULT_CONFIG: &str = "aviso.toml";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub database_url: Option<String>,
    pub templates: Option<PathBuf>,
    pub timezone: Option<String>,
}

/// The settings in force, with relative paths already resolved against the
/// directory of the file that named them.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: Option<PathBuf>,
    pub file: ConfigFile,
    pub base_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Parse { path: String, detail: String },
}

impl Config {
    /// Loads `path`; a missing file is an error only if the user named it.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config {
                    path: None,
                    file: ConfigFile::default(),
                    base_dir: PathBuf::from("."),
                })
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            detail: e.to_string().trim().replace('\n', " "),
        })?;
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Config {
            path: Some(path),
            file,
            base_dir,
        })
    }

    /// The database URL: flag or environment first, then the file, then the default.
    /// A relative SQLite path in the file is relative to the file.
    pub fn database_url(&self, flag: Option<&str>) -> String {
        if let Some(url) = flag {
            return url.to_string();
        }
        match &self.file.database_url {
            Some(url) => self.relative_sqlite(url),
            None => DEFAULT_DATABASE_URL.to_string(),
        }
    }

    fn relative_sqlite(&self, url: &str) -> String {
        let Some(path) = url.strip_prefix("sqlite://") else {
            return url.to_string();
        };
        if Path::new(path).is_absolute() || self.path.is_none() {
            return url.to_string();
        }
        format!("sqlite://{}", self.base_dir.join(path).display())
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}
