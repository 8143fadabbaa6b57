//! Bounces: RFC 3464 delivery status notifications (and RFC 5965 complaint
//! reports) as mail systems write them, or a simple JSON form for providers
//! that post webhooks. Either way the message is named by the Message-ID aviso
//! gave it (`<aviso.RUN.ID@domain>`) or by its reference (`mID`).

use mailparse::{MailHeaderMap, ParsedMail};

use crate::campaigns::{NewReceipt, ReceiptEffect, ReceiptTarget};
use crate::domain::{SuppressionReason, SuppressionScope};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceKind {
    /// Failed for good (a 5.x.x status, or `failed`).
    Failed,
    /// Delayed: the mail system is still trying.
    Delayed,
    Delivered,
    /// The recipient reported the message as spam.
    Complaint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub message_id: i64,
    pub kind: BounceKind,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    /// `dsn`, `arf` or `json`.
    pub format: &'static str,
}

impl Bounce {
    /// What the bounce does to its message: a bad mailbox (5.1.x) is also
    /// suppressed, so no later run writes to it again.
    pub fn receipt(&self, message: &ReceiptTarget) -> NewReceipt {
        let (effect, suppress) = match self.kind {
            BounceKind::Failed => {
                let bad_mailbox = self
                    .status
                    .as_deref()
                    .is_some_and(|s| s.starts_with("5.1."));
                let suppress =
                    bad_mailbox.then_some((SuppressionScope::Email, SuppressionReason::HardBounce));
                (ReceiptEffect::Failed, suppress)
            }
            BounceKind::Delayed => (ReceiptEffect::Info, None),
            BounceKind::Delivered => (ReceiptEffect::Delivered, None),
            BounceKind::Complaint => (
                ReceiptEffect::Info,
                Some((SuppressionScope::Email, SuppressionReason::Complaint)),
            ),
        };
        NewReceipt {
            message_id: message.id,
            source: self.format.to_string(),
            effect,
            dedup_key: format!(
                "{}:{}:{:?}:{}",
                self.format,
                message.id,
                self.kind,
                self.status.as_deref().unwrap_or("")
            ),
            code: self.status.clone(),
            detail: self.diagnostic.clone(),
            suppress,
        }
    }
}

/// Reads a bounce; the error says what is missing, for the sender's logs.
pub fn parse_bounce(body: &[u8]) -> Result<Bounce, String> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if body.get(start) == Some(&b'{') {
        return parse_json(&body[start..]);
    }
    let mail = mailparse::parse_mail(body).map_err(|e| format!("not a MIME message: {e}"))?;
    let mut parts = Vec::new();
    flatten(&mail, &mut parts);
    let message_id = parts
        .iter()
        .find_map(|p| original_message_id(p))
        .ok_or("no Message-ID of an aviso message in the report")?;
    if let Some(report) = parts
        .iter()
        .find(|p| p.ctype.mimetype == "message/feedback-report")
    {
        let text = report.get_body().unwrap_or_default();
        return Ok(Bounce {
            message_id,
            kind: BounceKind::Complaint,
            status: None,
            diagnostic: field(&text, "Feedback-Type"),
            format: "arf",
        });
    }
    let status_part = parts
        .iter()
        .find(|p| p.ctype.mimetype == "message/delivery-status")
        .ok_or("no message/delivery-status part")?;
    let text =
        String::from_utf8_lossy(&status_part.get_body_raw().unwrap_or_default()).into_owned();
    // Per-message fields, then one block per recipient: the first recipient decides.
    let recipient = text
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(str::to_string)
        .find(|block| field(block, "Action").is_some())
        .ok_or("no recipient with an Action in the delivery status")?;
    let action = field(&recipient, "Action")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status =
        field(&recipient, "Status").map(|s| s.split_whitespace().next().unwrap_or("").to_string());
    let kind = match action.as_str() {
        "failed" => BounceKind::Failed,
        "delayed" => BounceKind::Delayed,
        "delivered" | "relayed" | "expanded" => BounceKind::Delivered,
        other => return Err(format!("unknown Action {other:?}")),
    };
    Ok(Bounce {
        message_id,
        kind,
        status,
        diagnostic: field(&recipient, "Diagnostic-Code"),
        format: "dsn",
    })
}

fn flatten<'a>(mail: &'a ParsedMail<'a>, out: &mut Vec<&'a ParsedMail<'a>>) {
    out.push(mail);
    for part in &mail.subparts {
        flatten(part, out);
    }
}

/// The Message-ID in the returned headers of the original message.
fn original_message_id(part: &ParsedMail<'_>) -> Option<i64> {
    match part.ctype.mimetype.as_str() {
        "text/rfc822-headers" | "message/rfc822" | "message/rfc822-headers" => {
            let raw = part.get_body_raw().ok()?;
            let (headers, _) = mailparse::parse_headers(&raw).ok()?;
            aviso_id(&headers.get_first_value("Message-ID")?)
        }
        _ => None,
    }
}

/// `<aviso.RUN.ID@domain>` → ID.
pub(super) fn aviso_id(message_id: &str) -> Option<i64> {
    let inner = message_id.trim().trim_start_matches('<');
    let local = inner.split('@').next()?;
    let mut parts = local.split('.');
    (parts.next()? == "aviso").then_some(())?;
    let _run = parts.next()?;
    parts.next()?.parse().ok()
}

/// One `Name: value` field of a header-style block.
fn field(block: &str, name: &str) -> Option<String> {
    let text = format!("{}\n\n", block.trim());
    let (headers, _) = mailparse::parse_headers(text.as_bytes()).ok()?;
    headers.get_first_value(name).map(|v| v.trim().to_string())
}

fn parse_json(body: &[u8]) -> Result<Bounce, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let message_id = v["message_id"]
        .as_str()
        .and_then(aviso_id)
        .or_else(|| {
            v["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix('m')?.parse().ok())
        })
        .ok_or("give message_id (<aviso.…@…>) or reference (m123)")?;
    let kind = match v["type"].as_str().unwrap_or("") {
        "hard" | "bounce" | "failed" => BounceKind::Failed,
        "soft" | "delayed" => BounceKind::Delayed,
        "complaint" => BounceKind::Complaint,
        "delivered" => BounceKind::Delivered,
        other => {
            return Err(format!(
                "type {other:?}: use hard, soft, complaint or delivered"
            ))
        }
    };
    Ok(Bounce {
        message_id,
        kind,
        status: v["status"].as_str().map(str::to_string),
        diagnostic: v["diagnostic"].as_str().map(str::to_string),
        format: "json",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChannelKind;

    const DSN: &str = "From: MAILER-DAEMON@example.org\r\n\
To: avisos@votoextranjero.example\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.org\r\n\
Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
\r\n\
Final-Recipient: rfc822; nadie@example.org\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <nadie@example.org>: Recipient address rejected\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: avisos@votoextranjero.example\r\n\
To: nadie@example.org\r\n\
Message-ID: <aviso.3.1234@votoextranjero.example>\r\n\
Subject: Ya puedes registrarte\r\n\
--B--\r\n";

    #[test]
    fn a_postfix_style_dsn_names_its_message_and_status() {
        let b = parse_bounce(DSN.as_bytes()).unwrap();
        assert_eq!(b.message_id, 1234);
        assert_eq!(b.kind, BounceKind::Failed);
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert!(b
            .diagnostic
            .as_deref()
            .unwrap()
            .contains("Recipient address rejected"));
        let r = b.receipt(&ReceiptTarget {
            id: 1234,
            channel: ChannelKind::Email,
            address: "nadie@example.org".into(),
        });
        assert_eq!(r.effect, ReceiptEffect::Failed);
        assert_eq!(
            r.suppress,
            Some((SuppressionScope::Email, SuppressionReason::HardBounce))
        );
    }

    #[test]
    fn json_bounces_and_bad_input() {
        let b = parse_bounce(br#"{"reference":"m7","type":"complaint"}"#).unwrap();
        assert_eq!((b.message_id, b.kind), (7, BounceKind::Complaint));
        assert!(parse_bounce(br#"{"type":"hard"}"#).is_err());
        assert!(parse_bounce(b"not a report at all").is_err());
        assert!(parse_bounce(b"").is_err());
        assert_eq!(aviso_id("<aviso.1.99@x.example>"), Some(99));
        assert_eq!(aviso_id("<other.1.99@x.example>"), None);
    }
}
