//! Which provider a URL names: the one place that knows every kind.

use std::path::Path;
use std::sync::Arc;

use super::{
    Channel, FileChannel, KannelChannel, ProviderContext, ProviderError, SmtpChannel,
    TwilioChannel, WebhookChannel,
};
use crate::domain::ChannelKind;

/// Opens the provider a URL names, for messages of `kind`.
pub fn open_provider(
    url: &str,
    kind: ChannelKind,
    ctx: &ProviderContext,
) -> Result<Arc<dyn Channel>, ProviderError> {
    let invalid = |detail: String| ProviderError::Invalid {
        url: crate::domain::redact_url(url),
        detail,
    };
    if let Some(path) = url.strip_prefix("file://") {
        let path = Path::new(path);
        let dir = if path.is_absolute() {
            path.to_path_buf()
        } else {
            ctx.base_dir.join(path)
        };
        return Ok(Arc::new(
            FileChannel::new(dir, kind).map_err(|e| invalid(e.to_string()))?,
        ));
    }
    let scheme = url.split("://").next().unwrap_or("");
    match (scheme, kind) {
        ("smtp" | "smtps", ChannelKind::Email) => {
            Ok(Arc::new(SmtpChannel::open(url, ctx).map_err(invalid)?))
        }
        ("smtp" | "smtps", ChannelKind::Sms) => {
            Err(invalid("an SMTP server cannot send SMS".into()))
        }
        ("kannel", ChannelKind::Sms) => Ok(Arc::new(KannelChannel::open(url, ctx).map_err(invalid)?)),
        ("twilio" | "twilio+http", ChannelKind::Sms) => {
            Ok(Arc::new(TwilioChannel::open(url, ctx).map_err(invalid)?))
        }
        ("webhook+http" | "webhook+https", ChannelKind::Sms) => {
            Ok(Arc::new(WebhookChannel::open(url, ctx).map_err(invalid)?))
        }
        (_, ChannelKind::Email) => Err(invalid(
            "unknown e-mail provider: use smtp://host:port?tls=starttls or file:///dir".into(),
        )),
        (_, ChannelKind::Sms) => Err(invalid(
            "unknown SMS provider: use kannel://host:port?from=…, twilio://…, webhook+https://… or file:///dir"
                .into(),
        )),
    }
}
