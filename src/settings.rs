//! The settings a command runs with, resolved once at start-up by
//! [`Settings::resolve`] and parsed there, so a mistake stops the command
//! before it does anything and names where the value came from.
//!
//! Precedence, highest first:
//!
//! 1. command-line flags (`--database-url`, `--templates`, and the worker's
//!    `--concurrency` and `--lease`); clap also reads `AVISO_CONFIG`,
//!    `AVISO_DATABASE_URL` and `AVISO_TEMPLATES` into the first ones;
//! 2. the other `AVISO_*` variables; secrets also from `NAME_FILE` or
//!    systemd's credentials (see [`Env::secret`]);
//! 3. `aviso.toml` (or `--config FILE`);
//! 4. settings stored in the database: only the token key, which nothing
//!    above sets (created on first use by `tokens::Tokens::from_store`);
//! 5. the defaults in [`crate::config`].
//!
//! Not every setting is in every layer:
//!
//! | setting                          | flag | environment                    | aviso.toml              |
//! |----------------------------------|------|--------------------------------|-------------------------|
//! | database URL                     | yes  | `AVISO_DATABASE_URL` (+ file)  | `database_url`          |
//! | templates directory¹             | yes  |                                | `templates`             |
//! | public URL                       |      | `AVISO_PUBLIC_URL`             | `public_url`            |
//! | e-mail / SMS provider            |      | `AVISO_EMAIL/SMS_PROVIDER`     | `[email]`/`[sms]` `provider` |
//! | SMTP username and password       |      | `AVISO_SMTP_USERNAME/PASSWORD` |                         |
//! | SMS username and password        |      | `AVISO_SMS_USERNAME/PASSWORD`  | `[sms]`                 |
//! | DKIM key file                    |      | `AVISO_DKIM_KEY_FILE`          |                         |
//! | receipts secret                  |      | `AVISO_RECEIPTS_SECRET`        | `[receipts] secret`     |
//! | worker concurrency and lease     | yes  |                                | `[worker]`              |
//! | everything else                  |      |                                | yes                     |
//!
//! ¹ then `./templates` if it holds `entities.toml`, else the built-in ones.

mod env;
mod error;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

pub use env::Env;
pub use error::SettingsError;

use crate::channels::ProviderContext;
use crate::config::{
    hours_ms, Config, DEFAULT_AUTOPAUSE_RATIO, DEFAULT_AUTOPAUSE_WINDOW, DEFAULT_CONCURRENCY,
    DEFAULT_DATABASE_URL, DEFAULT_FROM, DEFAULT_GRACE_HOURS, DEFAULT_LEASE_SECONDS,
    DEFAULT_PUBLIC_URL, DEFAULT_ZONE,
};
use crate::cost::PriceTable;
use crate::dispatch::{AutoPause, RetryPolicy};
use crate::domain::{ChannelKind, FrequencyCap};
use crate::schedule::Window;
use crate::templates::{EmailSettings, DEFAULT_ATTACHMENT_LIMIT};

/// What the command line says, over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub templates: Option<PathBuf>,
    pub concurrency: Option<usize>,
    pub lease: Option<Duration>,
}

/// A provider of `[providers.NAME]`, which a campaign chooses with `--provider NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedProvider {
    pub channel: ChannelKind,
    pub url: String,
}

/// The settings in force, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where relative paths of the file (`file://outbox`) are read from.
    pub base_dir: PathBuf,
    pub database_url: String,
    /// `None`: the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// The zone campaign times are read in.
    pub zone: Tz,
    /// Where `aviso serve` is reached, without a trailing `/`.
    pub public_url: String,
    pub email: EmailSettings,
    pub email_provider: Option<String>,
    pub sms_provider: Option<String>,
    pub providers: BTreeMap<String, NamedProvider>,
    pub email_cap: Option<FrequencyCap>,
    pub sms_cap: Option<FrequencyCap>,
    pub retry: RetryPolicy,
    /// A run found later than this after its time is recorded as missed.
    pub grace_ms: i64,
    /// The send window of campaigns that set none.
    pub default_window: Option<Window>,
    pub autopause: AutoPause,
    /// Sends a worker has in flight at once.
    pub concurrency: usize,
    /// How long a worker's claim holds.
    pub lease: Duration,
    pub prices: Option<Arc<PriceTable>>,
    sms_username: Option<String>,
    sms_password: Option<String>,
    receipts_secret: Option<String>,
    /// Kept for the secrets, read from files only by the commands that use them.
    env: Env,
}

impl Settings {
    /// Merges the layers (see the module's documentation) and parses every value.
    pub fn resolve(config: Config, env: Env, cli: Overrides) -> Result<Settings, SettingsError> {
        let file_name = config.name();
        let bad = |key: &str, reason: String| SettingsError::File {
            file: file_name.clone(),
            key: key.to_string(),
            reason,
        };
        let file = &config.file;
        // A PostgreSQL URL holds a password, so it may come from a file too.
        let database_url = match cli.database_url {
            Some(url) => url,
            None => match env.secret("AVISO_DATABASE_URL")? {
                Some(url) => url,
                None => config
                    .database_url()
                    .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()),
            },
        };
        let templates_dir = match (cli.templates, &file.templates) {
            (Some(dir), _) => Some(dir),
            (None, Some(dir)) => Some(config.resolve(dir)),
            (None, None) => {
                let local = PathBuf::from("templates");
                local.join("entities.toml").is_file().then_some(local)
            }
        };
        let zone = match &file.timezone {
            Some(name) => crate::schedule::parse_zone(name).map_err(|e| bad("timezone", e.0))?,
            None => DEFAULT_ZONE,
        };
        let public_url = env
            .var("AVISO_PUBLIC_URL")
            .or(file.public_url.as_deref())
            .unwrap_or(DEFAULT_PUBLIC_URL)
            .trim_end_matches('/')
            .to_string();
        let unsubscribe = file
            .email
            .unsubscribe_url
            .clone()
            .unwrap_or_else(|| format!("{public_url}/unsubscribe/{{token}}"));
        let email = EmailSettings::new(
            file.email.from.as_deref().unwrap_or(DEFAULT_FROM),
            unsubscribe,
            file.email
                .attachment_limit
                .unwrap_or(DEFAULT_ATTACHMENT_LIMIT),
        )
        .map_err(|e| bad("[email] from", e.to_string()))?;
        let provider = |var: &str, configured: &Option<String>| {
            env.var(var)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .or_else(|| configured.clone())
        };
        let mut providers = BTreeMap::new();
        for (name, p) in &file.providers {
            let channel = ChannelKind::parse(&p.channel)
                .map_err(|e| bad(&format!("[providers.{name}] channel"), e.0))?;
            let url = p.url.clone();
            providers.insert(name.clone(), NamedProvider { channel, url });
        }
        let schedule = &file.schedule;
        let default_window = schedule
            .default_window
            .as_deref()
            .map(Window::parse)
            .transpose()
            .map_err(|e| bad("[schedule] default_window", e.0))?;
        let prices = file
            .prices
            .as_ref()
            .map(|table| PriceTable::from_toml(table, &file_name))
            .transpose()?;
        Ok(Settings {
            database_url,
            templates_dir,
            zone,
            email,
            email_provider: provider("AVISO_EMAIL_PROVIDER", &file.email.provider),
            sms_provider: provider("AVISO_SMS_PROVIDER", &file.sms.provider),
            providers,
            email_cap: file.email.frequency_cap,
            sms_cap: file.sms.frequency_cap,
            retry: RetryPolicy::from_config(&file.retry),
            grace_ms: hours_ms(schedule.grace_hours.unwrap_or(DEFAULT_GRACE_HOURS)),
            default_window,
            autopause: AutoPause {
                window: schedule
                    .autopause_window
                    .unwrap_or(DEFAULT_AUTOPAUSE_WINDOW)
                    .max(1),
                ratio: schedule.autopause_ratio.unwrap_or(DEFAULT_AUTOPAUSE_RATIO),
            },
            concurrency: cli
                .concurrency
                .or(file.worker.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY)
                .max(1),
            lease: cli.lease.unwrap_or(Duration::from_secs(
                file.worker.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS),
            )),
            prices: prices.map(Arc::new),
            public_url,
            sms_username: file.sms.username.clone(),
            sms_password: file.sms.password.clone(),
            receipts_secret: file.receipts.secret.clone(),
            base_dir: config.base_dir,
            env,
        })
    }

    /// The provider URL of a channel, used when a campaign names none.
    pub fn provider_url(&self, kind: ChannelKind) -> Option<&str> {
        match kind {
            ChannelKind::Email => self.email_provider.as_deref(),
            ChannelKind::Sms => self.sms_provider.as_deref(),
        }
    }

    /// The frequency cap of a channel's campaigns that set none.
    pub fn frequency_cap(&self, kind: ChannelKind) -> Option<FrequencyCap> {
        match kind {
            ChannelKind::Email => self.email_cap,
            ChannelKind::Sms => self.sms_cap,
        }
    }

    /// Credentials and paths the providers need. Read on demand: a secret
    /// file only the worker may read stops no other command.
    pub fn credentials(&self) -> Result<ProviderContext, SettingsError> {
        let env = &self.env;
        Ok(ProviderContext {
            base_dir: self.base_dir.clone(),
            smtp_username: env.secret("AVISO_SMTP_USERNAME")?,
            smtp_password: env.secret("AVISO_SMTP_PASSWORD")?,
            sms_username: env
                .secret("AVISO_SMS_USERNAME")?
                .or_else(|| self.sms_username.clone()),
            sms_password: env
                .secret("AVISO_SMS_PASSWORD")?
                .or_else(|| self.sms_password.clone()),
            dkim_key_file: env
                .var_os("AVISO_DKIM_KEY_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }

    /// The secret bounce senders and inbound SMS present; `None` keeps those endpoints closed.
    pub fn receipts_secret(&self) -> Result<Option<String>, SettingsError> {
        Ok(self
            .env
            .secret("AVISO_RECEIPTS_SECRET")?
            .or_else(|| self.receipts_secret.clone()))
    }
}
