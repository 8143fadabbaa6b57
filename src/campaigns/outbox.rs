//! The outbox rows a worker claims, and what it reports back about each.

use crate::domain::{SuppressionReason, SuppressionScope};

/// A message claimed by a worker: everything needed to render and send it,
/// frozen when the run started.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedMessage {
    pub id: i64,
    pub run_id: i64,
    pub campaign_id: i64,
    pub contact_id: String,
    pub channel: String,
    pub address: String,
    pub kind: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub entity: Option<String>,
    pub country: Option<String>,
    pub language: String,
    pub credential: Option<String>,
    pub population: Option<String>,
    pub modality: Option<String>,
    /// Attempts already recorded before this claim.
    pub attempts: i64,
    /// The claim's token: an outcome is recorded only if it still matches.
    pub lease_epoch: i64,
}

/// What happened to one claimed message.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub message_id: i64,
    pub lease_epoch: i64,
    pub provider: String,
    pub code: Option<String>,
    pub reason: Option<String>,
    /// How long the provider took to answer, for attempts.
    pub latency_ms: Option<i64>,
    pub kind: OutcomeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeKind {
    /// Accepted by the provider.
    Sent { provider_ref: Option<String> },
    /// A temporary failure: try again at `next_attempt_at`.
    Retry { next_attempt_at: i64 },
    /// Given up: permanently, or out of attempts. A permanent failure may also
    /// suppress the address (`address`, scope, reason).
    Failed {
        permanent: bool,
        suppress: Option<(String, SuppressionScope, SuppressionReason)>,
    },
    /// Not attempted (outside its send window, provider saturated): back to the
    /// queue until `next_attempt_at`, without using an attempt.
    Deferred { next_attempt_at: i64 },
    /// Its campaign expired before it could go.
    Expired,
}

impl Outcome {
    /// Whether this outcome is an attempt to send (and is recorded as one).
    pub fn is_attempt(&self) -> bool {
        matches!(
            self.kind,
            OutcomeKind::Sent { .. } | OutcomeKind::Retry { .. } | OutcomeKind::Failed { .. }
        )
    }
}

/// How a batch of outcomes was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordReport {
    pub recorded: u64,
    /// Outcomes whose lease had been taken over: another worker owns the message now.
    pub lost_lease: u64,
}

/// A delivery report, bounce or unsubscribe about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReceipt {
    pub message_id: i64,
    /// `kannel`, `twilio`, `webhook`, `dsn`, `json`, `unsubscribe`.
    pub source: String,
    pub effect: ReceiptEffect,
    /// Unique per report: a second report with the same key is a replay.
    pub dedup_key: String,
    pub code: Option<String>,
    pub detail: Option<String>,
    /// The address must not be used again on this scope, for this reason.
    pub suppress: Option<(SuppressionScope, SuppressionReason)>,
}

/// What a report means for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptEffect {
    Delivered,
    Failed,
    /// Progress only (buffered, accepted by the SMSC), or an unsubscribe.
    Info,
}

impl ReceiptEffect {
    pub fn code(&self) -> &'static str {
        match self {
            ReceiptEffect::Delivered => "delivered",
            ReceiptEffect::Failed => "failed",
            ReceiptEffect::Info => "info",
        }
    }
}

/// How a report was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Applied to its message now.
    Applied,
    /// Kept: the message is still being recorded as sent; applied right after.
    Pending,
    /// The same report came before: nothing changed.
    Replayed,
}

/// The message a receipt is about.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReceiptTarget {
    pub id: i64,
    pub channel: String,
    pub address: String,
    pub status: String,
}
