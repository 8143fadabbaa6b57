//! Turning a rendered e-mail into a MIME message: multipart/alternative (text
//! and HTML), UTF-8, one-click unsubscribe headers (RFC 8058), attachments.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as MimeAttachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use serde::{Deserialize, Serialize};

use super::{one_line, RenderedEmail};
use crate::domain::EmailAddress;

/// Most providers refuse messages over 10–25 MB, and the base64 encoding adds a
/// third: 10 MB of attachments is the safe default.
pub const DEFAULT_ATTACHMENT_LIMIT: u64 = 10 * 1024 * 1024;

/// A file sent with every message of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub path: PathBuf,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("{path}: cannot read the attachment: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("attachments total {total} bytes, over the limit of {limit} bytes (set attachment_limit in aviso.toml, or send links instead)")]
    TooBig { total: u64, limit: u64 },
    #[error("cannot build the e-mail: {0}")]
    Build(String),
}

impl Attachment {
    pub fn from_path(path: &Path) -> Result<Attachment, AttachmentError> {
        let meta = std::fs::metadata(path).map_err(|source| AttachmentError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        let mime = mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_string();
        Ok(Attachment {
            path: path.to_path_buf(),
            name,
            mime,
            size: meta.len(),
        })
    }

    pub fn check_total(list: &[Attachment], limit: u64) -> Result<(), AttachmentError> {
        let total: u64 = list.iter().map(|a| a.size).sum();
        if total > limit {
            return Err(AttachmentError::TooBig { total, limit });
        }
        Ok(())
    }

    pub fn load(&self) -> Result<Arc<Vec<u8>>, AttachmentError> {
        std::fs::read(&self.path)
            .map(Arc::new)
            .map_err(|source| AttachmentError::Read {
                path: self.path.display().to_string(),
                source,
            })
    }
}

/// The envelope-level facts of one message.
pub struct EmailHeaders<'a> {
    /// `Name <address>` of the sender.
    pub from: &'a Mailbox,
    pub to: &'a EmailAddress,
    pub to_name: Option<&'a str>,
    /// Stable per outbox row, so a resend after a crash is recognisable.
    pub message_id: &'a str,
    pub unsubscribe_url: Option<&'a str>,
    /// The server takes 8-bit bodies (SMTP 8BITMIME, RFC 6152): text and HTML go
    /// out as UTF-8 as written, not quoted-printable, which is smaller on the
    /// wire and cheaper to build. A part with a line too long for 8bit (over 998
    /// bytes) still falls back to quoted-printable.
    pub eight_bit: bool,
}

pub fn build_email(
    rendered: &RenderedEmail,
    headers: &EmailHeaders<'_>,
    attachments: &[(Attachment, Arc<Vec<u8>>)],
) -> Result<Message, AttachmentError> {
    let to_address: lettre::Address = headers
        .to
        .as_str()
        .parse()
        .map_err(|e| AttachmentError::Build(format!("recipient address refused: {e}")))?;
    // Given, so lettre need not parse it back out of the From and To headers.
    let envelope = Envelope::new(Some(headers.from.email.clone()), vec![to_address.clone()])
        .map_err(|e| AttachmentError::Build(e.to_string()))?;
    // A CR or LF in a display name makes lettre panic (and must never reach a
    // header anyway): names and subject go out as one line.
    let to = Mailbox::new(headers.to_name.map(one_line), to_address);
    let mut builder = Message::builder()
        .envelope(envelope)
        .from(headers.from.clone())
        .to(to)
        .subject(one_line(&rendered.subject))
        .message_id(Some(headers.message_id.to_string()));
    if let Some(url) = headers.unsubscribe_url {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
    }
    let text_body = |text: &str| {
        headers
            .eight_bit
            .then(|| eight_bit_body(text))
            .flatten()
            .unwrap_or_else(|| Body::new(text.to_owned()))
    };
    let body = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text_body(&rendered.text)),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(text_body(&rendered.html)),
        );
    let result = if attachments.is_empty() {
        builder.multipart(body)
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for (attachment, bytes) in attachments {
            let content_type = ContentType::parse(&attachment.mime).unwrap_or_else(|_| {
                ContentType::parse("application/octet-stream").expect("valid MIME type")
            });
            mixed = mixed.singlepart(
                MimeAttachment::new(attachment.name.clone())
                    .body(bytes.as_ref().clone(), content_type),
            );
        }
        builder.multipart(mixed)
    };
    result.map_err(|e| AttachmentError::Build(e.to_string()))
}

/// `text` as it may travel unencoded (RFC 6152, RFC 5322 §2.1.1): CRLF line
/// ends, lines of at most 998 bytes, no NUL or lone CR; `None` when it cannot.
/// By hand because lettre's own check refuses lines over 76 characters, which
/// every paragraph of our templates is, and falls back to quoted-printable.
fn eight_bit_body(text: &str) -> Option<Body> {
    const MAX_LINE: usize = 998;
    let bytes = text.as_bytes();
    if memchr::memchr(0, bytes).is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32 + 2);
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE || memchr::memchr(b'\r', line).is_some() {
            return None;
        }
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    let encoding = match text.is_ascii() {
        true => ContentTransferEncoding::SevenBit,
        false => ContentTransferEncoding::EightBit,
    };
    Some(Body::dangerous_pre_encoded(out, encoding))
}

/// Who e-mails come from and where their unsubscribe links point.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub from: Mailbox,
    /// A URL with `{token}` where the message's unsubscribe token goes.
    pub unsubscribe_template: String,
    pub attachment_limit: u64,
}

impl EmailSettings {
    pub fn new(
        from: &str,
        unsubscribe_template: String,
        attachment_limit: u64,
    ) -> Result<EmailSettings, AttachmentError> {
        let from: Mailbox = from.parse().map_err(|e| {
            AttachmentError::Build(format!("sender {from:?} is not `Name <address>`: {e}"))
        })?;
        Ok(EmailSettings {
            from,
            unsubscribe_template,
            attachment_limit,
        })
    }

    pub fn unsubscribe_url(&self, token: &str) -> String {
        self.unsubscribe_template.replace("{token}", token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eight_bit(text: &str) -> Option<(Vec<u8>, ContentTransferEncoding)> {
        eight_bit_body(text).map(|b| (b.as_ref().to_vec(), b.encoding()))
    }

    #[test]
    fn eight_bit_bodies_keep_utf8_and_end_lines_with_crlf() {
        let (bytes, encoding) = eight_bit("Hola, María\nAdiós\r\n\n").unwrap();
        assert_eq!(bytes, "Hola, María\r\nAdiós\r\n\r\n".as_bytes());
        assert_eq!(encoding, ContentTransferEncoding::EightBit);
        let (bytes, encoding) = eight_bit("plain\ntext").unwrap();
        assert_eq!(bytes, b"plain\r\ntext");
        assert_eq!(encoding, ContentTransferEncoding::SevenBit);
    }

    #[test]
    fn what_cannot_travel_unencoded_is_refused() {
        assert!(eight_bit(&"é".repeat(499)).is_some()); // 998 bytes
        assert!(eight_bit(&format!("{}a", "é".repeat(499))).is_none());
        assert!(eight_bit("a\rb").is_none());
        assert!(eight_bit("a\0b").is_none());
    }
}
