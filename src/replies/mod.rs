//! Citizens answer our SMS: BAJA (or ALTO, STOP, CANCELAR) to stop them, ALTA
//! (or START) to get them again. An inbound SMS arrives through `aviso serve`
//! (Kannel's `sms-service`, or the JSON webhook), is classified, applied to
//! the suppression list, recorded in the `inbound` table, and confirmed by an
//! SMS reply rendered from `templates/respuesta_baja` or `respuesta_alta`.
//!
//! ALTA lifts only the citizen's own BAJA (reason `reply_opt_out`): a number
//! suppressed because it bounced, is invalid, or the call centre was asked not
//! to call again stays suppressed, and then no reply goes out either, since a
//! reply is a message to a number we must not message.

mod keywords;
mod replier;

use serde::Serialize;

pub use keywords::{classify, ReplyKeyword};
pub use replier::Replier;

use crate::domain::{vocabulary, PhoneNumber, SuppressionReason};

/// Longer texts are cut before they are stored: a keyword reply is a few
/// words, and nobody gets to fill the database through the webhook.
const MAX_TEXT_CHARS: usize = 1_600;

vocabulary!(
    /// Which door an inbound SMS came through.
    InboundSource { Kannel => "kannel", Webhook => "webhook" }
);

vocabulary!(
    /// What aviso did about an inbound SMS.
    ReplyAction {
        Suppressed => "suppressed",
        AlreadySuppressed => "already_suppressed",
        Resubscribed => "resubscribed",
        KeptSuppressed => "kept_suppressed",
        NotSuppressed => "not_suppressed",
        Ignored => "ignored",
    }
);

vocabulary!(
    /// How the confirmation reply went.
    ReplyStatus {
        Pending => "pending",
        Sent => "sent",
        Failed => "failed",
        NotSent => "not_sent",
        NoProvider => "no_provider",
    }
);

impl ReplyAction {
    /// The template that confirms this action, or none when nothing may be
    /// sent (another suppression stays) or nothing was asked.
    pub fn reply_template(self) -> Option<&'static str> {
        match self {
            ReplyAction::Suppressed | ReplyAction::AlreadySuppressed => Some("respuesta_baja"),
            ReplyAction::Resubscribed | ReplyAction::NotSuppressed => Some("respuesta_alta"),
            ReplyAction::KeptSuppressed | ReplyAction::Ignored => None,
        }
    }
}

/// An SMS a citizen sent us, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    pub source: InboundSource,
    pub phone: PhoneNumber,
    pub text: String,
    pub keyword: ReplyKeyword,
}

impl NewInbound {
    pub fn new(source: InboundSource, phone: PhoneNumber, text: &str) -> NewInbound {
        let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
        NewInbound {
            source,
            phone,
            keyword: classify(&text),
            text,
        }
    }
}

/// What the store did with an inbound SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedReply {
    /// Its row in `inbound`.
    pub id: i64,
    pub action: ReplyAction,
    /// For ALTA: the suppression that still stops messages to the number.
    pub kept: Option<SuppressionReason>,
}

/// One row of the `inbound` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundRecord {
    pub id: i64,
    pub received_at: i64,
    pub source: InboundSource,
    pub phone: PhoneNumber,
    pub text: String,
    pub keyword: ReplyKeyword,
    pub action: ReplyAction,
    pub reply: ReplyStatus,
    pub reply_detail: Option<String>,
}

/// The answer to whoever delivered the SMS to us (no personal data in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundOutcome {
    pub id: i64,
    pub keyword: ReplyKeyword,
    pub action: ReplyAction,
    pub reply: ReplyStatus,
}
