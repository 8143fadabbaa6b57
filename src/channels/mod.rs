//! Channels: one [`Channel`] trait, with the providers that carry messages
//! behind it (SMTP, SMS gateways, and files for the embedded default and dry
//! runs). A provider answers with an acceptance or a classified failure:
//! temporary (try again later) or permanent (stop, and maybe suppress).

mod dkim;
mod file;
mod http;
mod kannel;
mod open;
mod smtp;
mod twilio;
mod webhook;

use std::time::Duration;

use async_trait::async_trait;

pub use dkim::{DkimError, DkimSigner};
pub use file::FileChannel;
pub use kannel::KannelChannel;
pub use open::open_provider;
pub use smtp::SmtpChannel;
pub use twilio::{suppression_for as twilio_suppression, TwilioChannel};
pub use webhook::{signature as webhook_signature, WebhookChannel, SIGNATURE_HEADER};

use crate::domain::{ChannelKind, SuppressionReason};
use crate::templates::sms::SmsEncoding;

/// A message ready for its provider.
pub enum Outgoing {
    Email(EmailOut),
    Sms(SmsOut),
}

impl Outgoing {
    pub fn reference(&self) -> &str {
        match self {
            Outgoing::Email(e) => &e.reference,
            Outgoing::Sms(s) => &s.reference,
        }
    }
}

pub struct EmailOut {
    /// Stable per outbox row (`m123`), also in the Message-ID.
    pub reference: String,
    pub envelope: lettre::address::Envelope,
    /// The whole MIME message as sent.
    pub raw: Vec<u8>,
}

pub struct SmsOut {
    pub reference: String,
    /// E.164.
    pub to: String,
    pub text: String,
    pub encoding: SmsEncoding,
    pub segments: usize,
    /// Where the gateway should report delivery, when receipts are enabled.
    pub status_url: Option<String>,
}

/// The provider took the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub code: Option<String>,
    /// The provider's own id for the message, to match its delivery reports.
    pub provider_ref: Option<String>,
}

/// Why a provider did not take a message, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later: 4xx, connection refused or reset, timeouts, throttling.
    #[error("{reason}")]
    Temporary {
        code: Option<String>,
        reason: String,
        /// The provider said when to come back.
        retry_after: Option<Duration>,
        /// The provider asked us to slow down (SMTP 421/451/452, HTTP 429).
        throttle: bool,
    },
    /// Retrying cannot help: 5xx, invalid number, rejected content.
    #[error("{reason}")]
    Permanent {
        code: Option<String>,
        reason: String,
        /// Set when the address itself is bad and later runs must skip it.
        suppress: Option<SuppressionReason>,
    },
}

impl DeliveryError {
    pub fn temporary(reason: impl Into<String>) -> DeliveryError {
        DeliveryError::Temporary {
            code: None,
            reason: reason.into(),
            retry_after: None,
            throttle: false,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            DeliveryError::Temporary { code, .. } | DeliveryError::Permanent { code, .. } => {
                code.as_deref()
            }
        }
    }
}

#[async_trait]
pub trait Channel: Send + Sync {
    /// What the provider is and how hard it may be driven.
    fn info(&self) -> &ProviderInfo;
    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError>;

    /// The provider's name as recorded with every attempt (no credentials).
    fn name(&self) -> &str {
        &self.info().name
    }

    fn kind(&self) -> ChannelKind {
        self.info().kind
    }

    /// The provider takes 8-bit e-mail bodies (SMTP 8BITMIME), so text can go
    /// out as UTF-8 instead of quoted-printable.
    fn takes_8bit(&self) -> bool {
        false
    }

    /// The provider reports delivery to the URL it is given with each SMS, so
    /// the message carries one (signed). A provider that reports nothing gets
    /// none: signing a URL nobody calls is work for every message.
    fn reports_delivery(&self) -> bool {
        false
    }

    /// The key e-mail for this provider is signed with (`dkim=` in its URL):
    /// the composer signs each message once, on its final bytes.
    fn dkim(&self) -> Option<&DkimSigner> {
        None
    }
}

/// A provider's description, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    pub name: String,
    pub kind: ChannelKind,
    /// Messages per second the provider allows, when configured (`rate=`).
    pub rate: Option<f64>,
    /// Connections (or requests) the provider accepts at once (`pool=`).
    pub connections: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {url}: {detail}")]
    Invalid { url: String, detail: String },
}

/// Credentials and paths a provider URL may need, from the environment or config.
#[derive(Debug, Clone, Default)]
pub struct ProviderContext {
    /// Relative `file://` paths are read from here (the config file's directory).
    pub base_dir: std::path::PathBuf,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub sms_username: Option<String>,
    pub sms_password: Option<String>,
    /// AVISO_DKIM_KEY_FILE: the DKIM key of an SMTP provider whose URL has
    /// `dkim=` but no `dkim_key=`.
    pub dkim_key_file: Option<std::path::PathBuf>,
}

/// `pool=N` (connections, default `default_pool`) and `rate=R` (messages per second).
pub(crate) fn pool_and_rate(
    url: &url::Url,
    default_pool: usize,
) -> Result<(usize, Option<f64>), String> {
    let pool = match query_param(url, "pool") {
        Some(p) => p
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("pool={p}: expected a number of connections"))?,
        None => default_pool,
    };
    let rate = match query_param(url, "rate") {
        Some(r) => Some(
            r.parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0)
                .ok_or_else(|| format!("rate={r}: expected messages per second"))?,
        ),
        None => None,
    };
    Ok((pool, rate))
}

fn permanent(reason: impl Into<String>) -> DeliveryError {
    DeliveryError::Permanent {
        code: None,
        reason: reason.into(),
        suppress: None,
    }
}

fn wrong_kind(provider: &str, what: &str) -> DeliveryError {
    permanent(format!("{provider} cannot send {what}"))
}

/// Query parameters of a provider URL, e.g. `rate=50&pool=4`.
pub(crate) fn query_param(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}
