//! The outbox rows a worker claims, and what it reports back about each.

use crate::domain::{ChannelKind, SuppressionReason, SuppressionScope};

/// A message claimed by a worker: everything needed to render and send it,
/// frozen when the run started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    pub id: i64,
    pub run_id: i64,
    pub campaign_id: i64,
    pub contact_id: String,
    pub channel: ChannelKind,
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

/// Read by position, in the order of the store's claim (`CLAIMED_COLUMNS`):
/// a claim returns thousands of rows a second, and looking each of the 17
/// columns up by name was a third of the time spent reading them.
impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for ClaimedMessage
where
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<ClaimedMessage, sqlx::Error> {
        Ok(ClaimedMessage {
            id: row.try_get(0)?,
            run_id: row.try_get(1)?,
            campaign_id: row.try_get(2)?,
            contact_id: row.try_get(3)?,
            channel: {
                let code: String = row.try_get(4)?;
                ChannelKind::parse(&code).map_err(|e| sqlx::Error::ColumnDecode {
                    index: "channel".into(),
                    source: Box::new(e),
                })?
            },
            address: row.try_get(5)?,
            kind: row.try_get(6)?,
            first_name: row.try_get(7)?,
            last_name: row.try_get(8)?,
            entity: row.try_get(9)?,
            country: row.try_get(10)?,
            language: row.try_get(11)?,
            credential: row.try_get(12)?,
            population: row.try_get(13)?,
            modality: row.try_get(14)?,
            attempts: row.try_get(15)?,
            lease_epoch: row.try_get(16)?,
        })
    }
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
    Sent {
        provider_ref: Option<String>,
        /// SMS segments handed to the gateway (none for e-mail): what it bills.
        segments: Option<i64>,
    },
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
    #[sqlx(try_from = "String")]
    pub channel: ChannelKind,
    pub address: String,
}
