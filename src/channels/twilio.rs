//! A Twilio-style REST API: `POST /2010-04-01/Accounts/{sid}/Messages.json`
//! with a form body and basic authentication; the answer carries the
//! provider's message id, and status callbacks report delivery.

use async_trait::async_trait;

use super::http;
use super::{
    query_param, Accepted, Channel, DeliveryError, Outgoing, ProviderContext, ProviderInfo,
};
use crate::domain::{ChannelKind, SuppressionReason};

pub struct TwilioChannel {
    info: ProviderInfo,
    endpoint: reqwest::Url,
    account: String,
    token: String,
    from: String,
    client: reqwest::Client,
}

impl TwilioChannel {
    /// `twilio://api.twilio.com?from=+1…` (HTTPS), or `twilio+http://host:port?from=…`
    /// for a local test server; the account SID and auth token come from
    /// `AVISO_SMS_USERNAME` / `AVISO_SMS_PASSWORD` or the config file.
    pub fn open(url: &str, ctx: &ProviderContext) -> Result<TwilioChannel, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let scheme = if parsed.scheme() == "twilio+http" {
            "http"
        } else {
            "https"
        };
        let host = parsed
            .host_str()
            .ok_or("no host: write twilio://api.twilio.com?from=…")?;
        let base = match parsed.port() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let from = query_param(&parsed, "from")
            .filter(|f| !f.is_empty())
            .ok_or("no sender: add ?from=+1… (the number or messaging service to send from)")?;
        let account = ctx
            .sms_username
            .clone()
            .ok_or("no account SID: set AVISO_SMS_USERNAME (or username under [sms])")?;
        let token = ctx
            .sms_password
            .clone()
            .ok_or("no auth token: set AVISO_SMS_PASSWORD (or password under [sms])")?;
        let (pool, rate) = super::pool_and_rate(&parsed, 8)?;
        Ok(TwilioChannel {
            info: ProviderInfo {
                name: format!("twilio:{base}"),
                kind: ChannelKind::Sms,
                rate,
                connections: pool,
            },
            endpoint: reqwest::Url::parse(&format!(
                "{base}/2010-04-01/Accounts/{account}/Messages.json"
            ))
            .map_err(|e| format!("not a URL: {e}"))?,
            account,
            token,
            from,
            client: http::client(pool)?,
        })
    }
}

#[async_trait]
impl Channel for TwilioChannel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn reports_delivery(&self) -> bool {
        true
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError> {
        let Outgoing::Sms(sms) = message else {
            return Err(super::wrong_kind("Twilio", "e-mail"));
        };
        let mut form = vec![
            ("To", sms.to.as_str()),
            ("From", self.from.as_str()),
            ("Body", sms.text.as_str()),
        ];
        if let Some(url) = &sms.status_url {
            form.push(("StatusCallback", url));
        }
        let response = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account, Some(&self.token))
            .form(&form)
            .send()
            .await
            .map_err(|e| http::transport_error(&e))?;
        let http::Reply {
            status,
            retry_after,
            body,
        } = http::reply(response).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status.is_success() {
            return Ok(Accepted {
                code: Some(status.as_u16().to_string()),
                provider_ref: json["sid"].as_str().map(str::to_string),
            });
        }
        Err(match http::classify_status(status, &body, retry_after) {
            DeliveryError::Permanent { code, reason, .. } => DeliveryError::Permanent {
                suppress: json["code"].as_i64().and_then(suppression_for),
                code: json["code"].as_i64().map(|c| c.to_string()).or(code),
                reason,
            },
            temporary => temporary,
        })
    }
}

/// Twilio error codes that say the number itself must not be used again.
pub fn suppression_for(code: i64) -> Option<SuppressionReason> {
    match code {
        // Invalid 'To' number; not a mobile number; unknown destination; unreachable landline.
        21211 | 21614 | 30005 | 30006 => Some(SuppressionReason::Invalid),
        // The recipient replied STOP.
        21610 => Some(SuppressionReason::OptOut),
        _ => None,
    }
}
