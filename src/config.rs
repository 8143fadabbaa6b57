//! `aviso.toml` as written: every key optional. What the program runs with,
//! the file merged with the flags, the environment and the defaults below, is
//! [`crate::settings::Settings`].

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

// Every default, once; `aviso init` writes its sample from these.
pub const DEFAULT_CONFIG: &str = "aviso.toml";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://aviso.db";
/// Where `aviso serve` listens, and the URL its links point to: the same
/// address, for a machine that is not behind a proxy.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8025";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8025";
pub const DEFAULT_FROM: &str = "Voto desde el Extranjero <avisos@votoextranjero.example>";
/// Campaign times are read in this zone unless the configuration says otherwise.
pub const DEFAULT_ZONE: Tz = chrono_tz::America::Mexico_City;
pub const DEFAULT_GRACE_HOURS: f64 = 24.0;

/// Hours as milliseconds, as the scheduler counts grace.
pub fn hours_ms(hours: f64) -> i64 {
    (hours * 3_600_000.0) as i64
}

pub const DEFAULT_AUTOPAUSE_WINDOW: i64 = 200;
pub const DEFAULT_AUTOPAUSE_RATIO: f64 = 0.5;
pub const DEFAULT_CONCURRENCY: usize = 32;
pub const DEFAULT_LEASE_SECONDS: u64 = 60;
pub const DEFAULT_RETRY_INITIAL_SECONDS: f64 = 30.0;
pub const DEFAULT_RETRY_MULTIPLIER: f64 = 2.0;
pub const DEFAULT_RETRY_MAX_INTERVAL_SECONDS: f64 = 1800.0;
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 8;

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
    /// country; read into a `PriceTable` by `Settings::resolve`.
    pub prices: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A run found this many hours after its time is recorded as missed, not sent.
    pub grace_hours: Option<f64>,
    /// The send window of campaigns that set none, e.g. "09:00-20:00".
    pub default_window: Option<String>,
    /// Auto-pause: look at this many recent attempts…
    pub autopause_window: Option<i64>,
    /// …and pause when more than this share of them failed for good.
    pub autopause_ratio: Option<f64>,
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
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    pub initial_seconds: Option<f64>,
    pub multiplier: Option<f64>,
    pub max_interval_seconds: Option<f64>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub concurrency: Option<usize>,
    pub lease_seconds: Option<u64>,
}

/// A configuration file as read, and where it was, for the paths it names.
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
                return Ok(Config::absent())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Config::parse(&text, path)
    }

    /// No file: every setting comes from elsewhere.
    pub fn absent() -> Config {
        Config {
            path: None,
            file: ConfigFile::default(),
            base_dir: PathBuf::from("."),
        }
    }

    /// The text of the file at `path`.
    pub fn parse(text: &str, path: PathBuf) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            detail: locate(text, &e),
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

    /// How errors name the file: its path, or `aviso.toml` when there is none.
    pub fn name(&self) -> String {
        self.path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| DEFAULT_CONFIG.to_string())
    }

    /// The file's database URL; a relative SQLite path in it is relative to the file.
    pub fn database_url(&self) -> Option<String> {
        let url = self.file.database_url.as_deref()?;
        let Some(path) = url.strip_prefix("sqlite://") else {
            return Some(url.to_string());
        };
        if Path::new(path).is_absolute() || self.path.is_none() {
            return Some(url.to_string());
        }
        Some(format!("sqlite://{}", self.base_dir.join(path).display()))
    }

    /// A path the file names, relative to the file.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// `[worker] concurrency: line 2: invalid type…`: the key in the file's own
/// terms and the line, instead of toml's drawing of the line (which does not
/// fit on the one line errors get).
fn locate(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', ": ");
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return message;
    };
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let Some((key, _)) = line.split_once('=') else {
        return format!("line {line_number}: {message}");
    };
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|l| l.get(..=l.find(']')?));
    match table {
        Some(table) => format!("{table} {}: line {line_number}: {message}", key.trim()),
        None => format!("{}: line {line_number}: {message}", key.trim()),
    }
}
