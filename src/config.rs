//! `aviso.toml`: where the database is, where templates live, which providers to
//! use. Every setting has a default that works with no file at all; command-line
//! flags and `AVISO_*` variables override the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://aviso.db";
pub const DEFAULT_CONFIG: &str = "aviso.toml";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8025";
pub const DEFAULT_FROM: &str = "Voto desde el Extranjero <avisos@votoextranjero.example>";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub database_url: Option<String>,
    /// Templates directory; without it, `./templates` if present, else the built-in ones.
    pub templates: Option<PathBuf>,
    /// The zone in which campaign times are read (`--at 2021-09-01 10:00`).
    pub timezone: Option<String>,
    /// Where `aviso serve` can be reached by recipients and gateways.
    pub public_url: Option<String>,
    #[serde(default)]
    pub email: EmailConfig,
    #[serde(default)]
    pub sms: SmsConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub receipts: ReceiptsConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Named providers a campaign can choose with `--provider NAME`.
    #[serde(default)]
    pub providers: std::collections::BTreeMap<String, NamedProvider>,
    /// `[prices]`: currency, budget and `[prices.sms]` / `[prices.email]` by
    /// country; read into a `PriceTable` by [`Config::prices`].
    pub prices: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// A run found this many hours after its time is recorded as missed, not sent.
    pub grace_hours: f64,
    /// The send window of campaigns that set none, e.g. "09:00-20:00".
    pub default_window: Option<String>,
    /// Auto-pause: look at this many recent attempts…
    pub autopause_window: i64,
    /// …and pause when more than this share of them failed for good.
    pub autopause_ratio: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            grace_hours: 24.0,
            default_window: None,
            autopause_window: 200,
            autopause_ratio: 0.5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsConfig {
    /// The secret bounce senders present (`Authorization: Bearer …`);
    /// `AVISO_RECEIPTS_SECRET` overrides it.
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedProvider {
    /// `sms` or `email`.
    pub channel: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `Name <address>` in the From header.
    pub from: Option<String>,
    /// `smtp://host:port?tls=…` or `file:///dir`.
    pub provider: Option<String>,
    /// The unsubscribe link; `{token}` is replaced by the message's token.
    pub unsubscribe_url: Option<String>,
    /// Total size of a campaign's attachments, in bytes.
    pub attachment_limit: Option<u64>,
    /// The cap of e-mail campaigns that set none, e.g. "2/7d".
    pub frequency_cap: Option<crate::domain::FrequencyCap>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// `kannel://host:port?from=…`, `twilio://…`, `webhook+https://…` or `file:///dir`.
    pub provider: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The cap of SMS campaigns that set none, e.g. "2/7d".
    pub frequency_cap: Option<crate::domain::FrequencyCap>,
}

/// The retry policy for temporary failures: exponential with jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub initial_seconds: f64,
    pub multiplier: f64,
    pub max_interval_seconds: f64,
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_seconds: 30.0,
            multiplier: 2.0,
            max_interval_seconds: 1800.0,
            max_attempts: 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub concurrency: Option<usize>,
    pub lease_seconds: Option<u64>,
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
    #[error("{path} (named by {var} or systemd's credentials): cannot read the secret: {source}")]
    SecretFile {
        var: String,
        path: String,
        source: std::io::Error,
    },
}

/// A secret from the environment: `NAME` itself; or the contents of the file
/// `NAME_FILE` names; or, under systemd (`LoadCredential=`), the credential
/// named after it in `$CREDENTIALS_DIRECTORY` (`AVISO_SMTP_PASSWORD` →
/// `smtp-password`), absent when the unit does not load it. Trimmed. A file
/// named by `NAME_FILE` that cannot be read is an error rather than "no
/// secret": running without a password the operator meant to give fails
/// later and less clearly.
pub fn secret_from_env(name: &str) -> Result<Option<String>, ConfigError> {
    if let Some(value) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
        return Ok(Some(value));
    }
    let var = format!("{name}_FILE");
    let path = match std::env::var_os(&var).filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => match credential_path(name) {
            Some(path) if path.exists() => path,
            _ => return Ok(None),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
        var,
        path: path.display().to_string(),
        source,
    })?;
    Ok(Some(text.trim().to_string()).filter(|s| !s.is_empty()))
}

/// Where systemd puts the credential for `AVISO_SOME_SECRET`: `some-secret`.
fn credential_path(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?;
    let id = name
        .strip_prefix("AVISO_")
        .unwrap_or(name)
        .to_ascii_lowercase()
        .replace('_', "-");
    Some(PathBuf::from(dir).join(id))
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

    /// Where templates come from: the flag, the file, `./templates`, or built in.
    pub fn templates_dir(&self, flag: Option<&Path>) -> Option<PathBuf> {
        if let Some(dir) = flag {
            return Some(dir.to_path_buf());
        }
        if let Some(dir) = &self.file.templates {
            return Some(self.resolve(dir));
        }
        let local = PathBuf::from("templates");
        local.join("entities.toml").is_file().then_some(local)
    }

    pub fn public_url(&self) -> String {
        std::env::var("AVISO_PUBLIC_URL")
            .ok()
            .or_else(|| self.file.public_url.clone())
            .unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string())
            .trim_end_matches('/')
            .to_string()
    }

    /// The frequency cap aviso.toml sets for a channel's campaigns.
    pub fn frequency_cap(
        &self,
        channel: crate::domain::ChannelKind,
    ) -> Option<crate::domain::FrequencyCap> {
        match channel {
            crate::domain::ChannelKind::Email => self.file.email.frequency_cap,
            crate::domain::ChannelKind::Sms => self.file.sms.frequency_cap,
        }
    }

    /// The price table, if `[prices]` is set; its mistakes name this file.
    pub fn prices(&self) -> Result<Option<crate::cost::PriceTable>, crate::cost::PriceError> {
        let file = self
            .path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| DEFAULT_CONFIG.to_string());
        self.file
            .prices
            .as_ref()
            .map(|table| crate::cost::PriceTable::from_toml(table, &file))
            .transpose()
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}
