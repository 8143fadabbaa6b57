//! A generic JSON webhook: `POST {to, text, reference, encoding, segments,
//! status_url}` signed with HMAC-SHA256 of the body; any 2xx is acceptance.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::http;
use super::{Accepted, Channel, DeliveryError, Outgoing, ProviderContext, ProviderInfo};
use crate::domain::ChannelKind;

/// The header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Aviso-Signature";

pub struct WebhookChannel {
    info: ProviderInfo,
    endpoint: reqwest::Url,
    secret: String,
    client: reqwest::Client,
}

impl WebhookChannel {
    /// `webhook+https://host/path` or `webhook+http://host:port/path`; the
    /// signing secret comes from `AVISO_SMS_PASSWORD` or the config file.
    pub fn open(url: &str, ctx: &ProviderContext) -> Result<WebhookChannel, String> {
        let endpoint = url
            .strip_prefix("webhook+")
            .ok_or("write webhook+https://host/path")?;
        let mut parsed = url::Url::parse(endpoint).map_err(|e| format!("not a URL: {e}"))?;
        let (pool, rate) = super::pool_and_rate(&parsed, 8)?;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "pool" && k != "rate")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        parsed.set_query(None);
        if !kept.is_empty() {
            parsed.query_pairs_mut().extend_pairs(kept);
        }
        let secret = ctx
            .sms_password
            .clone()
            .ok_or("no signing secret: set AVISO_SMS_PASSWORD (or password under [sms])")?;
        Ok(WebhookChannel {
            info: ProviderInfo {
                name: format!("webhook:{}", crate::domain::redact_url(parsed.as_str())),
                kind: ChannelKind::Sms,
                rate,
                connections: pool,
            },
            endpoint: parsed,
            secret,
            client: http::client(pool)?,
        })
    }
}

/// `sha256=<hex>` of `body` under `secret`: what the receiver recomputes.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Channel for WebhookChannel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn reports_delivery(&self) -> bool {
        true
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError> {
        let Outgoing::Sms(sms) = message else {
            return Err(super::wrong_kind("the SMS webhook", "e-mail"));
        };
        let body = serde_json::json!({
            "to": sms.to,
            "text": sms.text,
            "reference": sms.reference,
            "encoding": sms.encoding,
            "segments": sms.segments,
            "status_url": sms.status_url,
        })
        .to_string();
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, body.as_bytes()))
            .body(body)
            .send()
            .await
            .map_err(|e| http::transport_error(&e))?;
        let http::Reply {
            status,
            retry_after,
            body: text,
        } = http::reply(response).await;
        if status.is_success() {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let id = json["id"]
                .as_str()
                .map(str::to_string)
                .or_else(|| json["id"].as_i64().map(|i| i.to_string()));
            return Ok(Accepted {
                code: Some(status.as_u16().to_string()),
                provider_ref: id,
            });
        }
        Err(http::classify_status(status, &text, retry_after))
    }
}
