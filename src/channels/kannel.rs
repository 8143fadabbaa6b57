//! Kannel's HTTP `sendsms` interface (smsbox). Kannel answers `0: Accepted for
//! delivery` or `3: Queued for later delivery` when it takes a message, and
//! reports delivery later by fetching the `dlr-url` we give it.

use async_trait::async_trait;

use super::http;
use super::{
    query_param, Accepted, Channel, DeliveryError, Outgoing, ProviderContext, ProviderInfo,
};
use crate::domain::ChannelKind;

/// Kannel silently cuts messages longer than its `max-messages` parts (10 by default).
const KANNEL_MAX_PARTS: usize = 10;
/// Delivered, failed, buffered, SMSC accepted, SMSC rejected.
const DLR_MASK: &str = "31";
/// Kannel's sending interface, to which each message's query is added.
const SENDSMS: &str = "/cgi-bin/sendsms?";

pub struct KannelChannel {
    info: ProviderInfo,
    username: String,
    password: String,
    from: String,
    gateway: http::Gateway,
    /// Ask for delivery reports (`dlr=false` when the SMS centre gives none).
    reports: bool,
}

impl KannelChannel {
    /// `kannel://host:port?from=INE&rate=R&pool=N[&tls=true][&dlr=false]`; credentials from
    /// `AVISO_SMS_USERNAME` / `AVISO_SMS_PASSWORD` or the config file.
    pub fn open(url: &str, ctx: &ProviderContext) -> Result<KannelChannel, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or("no host: write kannel://host:port?from=…")?;
        let port = parsed.port().unwrap_or(13013);
        let scheme = match query_param(&parsed, "tls").as_deref() {
            Some("true" | "1" | "yes") => "https",
            _ => "http",
        };
        let from = query_param(&parsed, "from")
            .filter(|f| !f.is_empty())
            .ok_or("no sender: add ?from=… (Kannel refuses messages without one)")?;
        let username = ctx
            .sms_username
            .clone()
            .ok_or("no user name: set AVISO_SMS_USERNAME (or username under [sms])")?;
        let password = ctx
            .sms_password
            .clone()
            .ok_or("no password: set AVISO_SMS_PASSWORD (or password under [sms])")?;
        let (pool, rate) = super::pool_and_rate(&parsed, 8)?;
        let reports = !matches!(
            query_param(&parsed, "dlr").as_deref(),
            Some("false" | "0" | "no")
        );
        // IPv6 addresses come in brackets already, as a URL writes them.
        let host_port = format!("{host}:{port}");
        Ok(KannelChannel {
            info: ProviderInfo {
                name: format!("kannel://{host_port}"),
                kind: ChannelKind::Sms,
                rate,
                connections: pool,
            },
            username,
            password,
            from,
            gateway: http::Gateway::new(&format!("{scheme}://{host_port}"), pool)?,
            reports,
        })
    }
}

#[async_trait]
impl Channel for KannelChannel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn reports_delivery(&self) -> bool {
        self.reports
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError> {
        let Outgoing::Sms(sms) = message else {
            return Err(super::wrong_kind("Kannel", "e-mail"));
        };
        // Kannel would accept these and send something else: refuse them here.
        if sms.text.is_empty() {
            return Err(super::permanent("the SMS text is empty"));
        }
        if sms.segments > KANNEL_MAX_PARTS {
            return Err(super::permanent(format!(
                "{} parts: Kannel sends at most {KANNEL_MAX_PARTS}",
                sms.segments
            )));
        }
        let coding = sms.encoding.kannel_coding();
        let uri = {
            // Room for the text encoded (a byte becomes at most three) and the rest.
            let mut target = String::with_capacity(SENDSMS.len() + 3 * sms.text.len() + 256);
            target.push_str(SENDSMS);
            let mut query = url::form_urlencoded::Serializer::for_suffix(target, SENDSMS.len());
            query.extend_pairs([
                ("username", self.username.as_str()),
                ("password", self.password.as_str()),
                ("from", self.from.as_str()),
                ("to", sms.to.as_str()),
                ("text", sms.text.as_str()),
                ("charset", "UTF-8"),
                ("coding", coding),
            ]);
            if let Some(status_url) = &sms.status_url {
                // Kannel expands %d (report type) and %A (the SMSC's answer).
                query.append_pair("dlr-mask", DLR_MASK);
                query.append_pair("dlr-url", &format!("{status_url}?type=%d&reply=%A"));
            }
            hyper::Uri::try_from(query.finish())
                .map_err(|e| super::permanent(format!("cannot make a request URL: {e}")))?
        };
        let http::Reply {
            status,
            retry_after,
            body,
        } = self.gateway.get(uri).await?;
        classify(status, &body, retry_after)
    }
}

fn classify(
    status: reqwest::StatusCode,
    body: &str,
    retry_after: Option<std::time::Duration>,
) -> Result<Accepted, DeliveryError> {
    let body = body.trim();
    if status.is_success() {
        if body.starts_with("0:") || body.starts_with("3:") {
            return Ok(Accepted {
                code: Some(body.chars().take(1).collect()),
                provider_ref: None,
            });
        }
        return Err(DeliveryError::temporary(format!(
            "unexpected answer from Kannel: {}",
            body.chars().take(200).collect::<String>()
        )));
    }
    Err(http::classify_status(status, body, retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn kannel_answers_are_classified() {
        assert!(classify(StatusCode::ACCEPTED, "0: Accepted for delivery", None).is_ok());
        assert!(classify(StatusCode::ACCEPTED, "3: Queued for later delivery", None).is_ok());
        let denied = classify(
            StatusCode::BAD_REQUEST,
            "Number(s) has/have been denied by white- and/or black-lists.",
            None,
        );
        assert!(matches!(denied, Err(DeliveryError::Permanent { .. })));
        let auth = classify(
            StatusCode::FORBIDDEN,
            "Authorization failed for sendsms",
            None,
        );
        assert!(matches!(auth, Err(DeliveryError::Temporary { .. })));
        let down = classify(StatusCode::SERVICE_UNAVAILABLE, "", None);
        assert!(matches!(down, Err(DeliveryError::Temporary { .. })));
    }

    #[tokio::test]
    async fn a_tls_gateway_opens_and_an_unreachable_one_is_a_temporary_failure() {
        let ctx = ProviderContext {
            base_dir: ".".into(),
            smtp_username: None,
            smtp_password: None,
            sms_username: Some("aviso".into()),
            sms_password: Some("secret".into()),
            dkim_key_file: None,
        };
        assert!(KannelChannel::open("kannel://127.0.0.1:1?from=INE&tls=true", &ctx).is_ok());
        let ipv6 = KannelChannel::open("kannel://[::1]:13013?from=INE", &ctx).unwrap();
        assert_eq!(ipv6.name(), "kannel://[::1]:13013");
        let channel = KannelChannel::open("kannel://127.0.0.1:1?from=INE", &ctx).unwrap();
        let sms = Outgoing::Sms(super::super::SmsOut {
            reference: "m1".into(),
            to: "+12135550100".into(),
            text: "hola".into(),
            encoding: crate::templates::sms::SmsEncoding::Gsm7,
            segments: 1,
            status_url: None,
        });
        match channel.send(&sms).await {
            Err(DeliveryError::Temporary { reason, .. }) => {
                assert!(reason.starts_with("cannot connect"), "{reason}");
                assert!(!reason.contains("secret"), "{reason}");
            }
            _ => panic!("a gateway nobody listens on must be a temporary failure"),
        }
    }
}
