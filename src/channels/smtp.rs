//! SMTP through lettre's async pooled transport. The transport is built once
//! and shared: its pool reuses connections across messages.

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{
    query_param, Accepted, Channel, DeliveryError, Outgoing, ProviderContext, ProviderInfo,
};
use crate::domain::{ChannelKind, SuppressionReason};

pub struct SmtpChannel {
    info: ProviderInfo,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Plain,
    Starttls,
    Wrapper,
}

impl SmtpChannel {
    /// `smtp://host:port?tls=none|starttls|tls&pool=N&rate=R`. STARTTLS is
    /// required by default; `tls=none` is accepted only for loopback hosts, so a
    /// typo cannot send voters' data in clear text over a network.
    pub fn open(url: &str, ctx: &ProviderContext) -> Result<SmtpChannel, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or("no host: write smtp://host:port")?
            .trim_matches(['[', ']'])
            .to_string();
        let tls = match query_param(&parsed, "tls").as_deref() {
            None if parsed.scheme() == "smtps" => Tls::Wrapper,
            None | Some("starttls") => Tls::Starttls,
            Some("tls") => Tls::Wrapper,
            Some("none") => Tls::Plain,
            Some(other) => return Err(format!("tls={other}: use none, starttls or tls")),
        };
        if tls == Tls::Plain && !is_loopback(&host) {
            return Err(format!(
                "tls=none is only allowed for a server on this machine (127.0.0.1, ::1, localhost), not {host}"
            ));
        }
        let port = parsed.port().unwrap_or(match tls {
            Tls::Wrapper => 465,
            _ => 587,
        });
        let (pool, rate) = super::pool_and_rate(&parsed, 8)?;
        let builder = match tls {
            Tls::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone()),
            Tls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| format!("STARTTLS setup: {e}"))?,
            Tls::Wrapper => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| format!("TLS setup: {e}"))?,
        };
        let mut builder = builder
            .port(port)
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(pool as u32));
        if let (Some(user), Some(password)) = (&ctx.smtp_username, &ctx.smtp_password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(SmtpChannel {
            info: ProviderInfo {
                name: format!("smtp://{host}:{port}"),
                kind: ChannelKind::Email,
                rate,
                connections: pool,
            },
            transport: builder.build(),
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[async_trait]
impl Channel for SmtpChannel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError> {
        let Outgoing::Email(email) = message else {
            return Err(super::wrong_kind("an SMTP server", "SMS"));
        };
        match self.transport.send_raw(&email.envelope, &email.raw).await {
            Ok(response) => Ok(Accepted {
                code: Some(response.code().to_string()),
                provider_ref: response.first_line().map(|l| l.chars().take(120).collect()),
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// SMTP replies by their codes: 5xx permanent (and a bad mailbox, 5.1.x,
/// suppressed), 4xx temporary (421/451/452 also mean "slow down"), anything
/// without a reply (network, TLS, timeout) temporary.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let code = e.status().map(|c| c.to_string());
    let reason: String = e.to_string().chars().take(300).collect();
    if e.is_permanent() {
        let bad_mailbox = reason.contains(" 5.1.");
        return DeliveryError::Permanent {
            code,
            reason,
            suppress: bad_mailbox.then_some(SuppressionReason::HardBounce),
        };
    }
    let throttle = matches!(code.as_deref(), Some("421" | "451" | "452"));
    DeliveryError::Temporary {
        code,
        reason,
        retry_after: None,
        throttle,
    }
}
