//! Citizens' SMS replies (BAJA / ALTA).

use async_trait::async_trait;

use super::{on_pool, SqlStore};
use crate::domain::{PhoneNumber, SuppressionReason};
use crate::replies::{
    AppliedReply, InboundRecord, InboundSource, NewInbound, ReplyAction, ReplyKeyword, ReplyStatus,
};
use crate::store::{ReplyStore, StoreResult};

/// The reason only the citizen's own BAJA gives, and the only one ALTA lifts.
const OWN: SuppressionReason = SuppressionReason::Reply;

type Row = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

#[async_trait]
impl ReplyStore for SqlStore {
    /// Applies what the SMS asks for and records it, in one transaction.
    async fn apply_reply(&self, inbound: &NewInbound, now: i64) -> StoreResult<AppliedReply> {
        on_pool!(&self.pool, |pool| {
            let phone = inbound.phone.as_str().to_string();
            let mut tx = pool.begin().await?;
            let (action, kept) = match inbound.keyword {
                ReplyKeyword::OptOut => {
                    let added: Option<String> = sqlx::query_scalar(
                        "INSERT INTO suppressions (address, channel, reason, source, created_at) \
                         VALUES ($1, 'sms', $2, $3, $4) ON CONFLICT (address, channel) DO NOTHING \
                         RETURNING address",
                    )
                    .bind(phone.clone())
                    .bind(OWN.code().to_string())
                    .bind(format!("sms reply ({})", inbound.source))
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let action = if added.is_some() {
                        ReplyAction::Suppressed
                    } else {
                        ReplyAction::AlreadySuppressed
                    };
                    (action, None)
                }
                ReplyKeyword::OptIn => {
                    let removed: Option<String> = sqlx::query_scalar(
                        "DELETE FROM suppressions WHERE address = $1 AND channel = 'sms' AND reason = $2 \
                         RETURNING address",
                    )
                    .bind(phone.clone())
                    .bind(OWN.code().to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let other: Option<String> = sqlx::query_scalar(
                        "SELECT MIN(reason) FROM suppressions WHERE address = $1 AND channel IN ('sms', 'all')",
                    )
                    .bind(phone.clone())
                    .fetch_one(&mut *tx)
                    .await?;
                    match other {
                        Some(reason) => (
                            ReplyAction::KeptSuppressed,
                            Some(SuppressionReason::parse(&reason).map_err(|e| {
                                crate::store::StoreError::Corrupt(format!(
                                    "a suppression's reason: {e}"
                                ))
                            })?),
                        ),
                        None if removed.is_some() => (ReplyAction::Resubscribed, None),
                        None => (ReplyAction::NotSuppressed, None),
                    }
                }
                ReplyKeyword::Unknown => (ReplyAction::Ignored, None),
            };
            let reply = if action.reply_template().is_some() {
                ReplyStatus::Pending
            } else {
                ReplyStatus::NotSent
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO inbound (received_at, source, phone, text, keyword, action, reply) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(now)
            .bind(inbound.source.code().to_string())
            .bind(phone)
            .bind(inbound.text.clone())
            .bind(inbound.keyword.code().to_string())
            .bind(action.code().to_string())
            .bind(reply.code().to_string())
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(AppliedReply { id, action, kept })
        })
    }

    async fn record_reply(
        &self,
        id: i64,
        status: ReplyStatus,
        detail: Option<String>,
    ) -> StoreResult<bool> {
        on_pool!(&self.pool, |pool| {
            let updated: Option<i64> = sqlx::query_scalar(
                "UPDATE inbound SET reply = $1, reply_detail = $2 WHERE id = $3 RETURNING id",
            )
            .bind(status.code().to_string())
            .bind(detail)
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(updated.is_some())
        })
    }

    async fn inbound_log(&self, after_id: i64, limit: i64) -> StoreResult<Vec<InboundRecord>> {
        on_pool!(&self.pool, |pool| {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, received_at, source, phone, text, keyword, action, reply, reply_detail \
                 FROM inbound WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(record).collect()
        })
    }
}

/// Reads a row back, re-checking every value.
fn record(row: Row) -> StoreResult<InboundRecord> {
    let (id, received_at, source, phone, text, keyword, action, reply, reply_detail) = row;
    let corrupt = |e: crate::domain::Invalid| {
        crate::store::StoreError::Corrupt(format!("inbound SMS {id}: {e}"))
    };
    Ok(InboundRecord {
        id,
        received_at,
        source: InboundSource::parse(&source).map_err(corrupt)?,
        phone: PhoneNumber::parse(&phone, None).map_err(corrupt)?,
        text,
        keyword: ReplyKeyword::parse(&keyword).map_err(corrupt)?,
        action: ReplyAction::parse(&action).map_err(corrupt)?,
        reply: ReplyStatus::parse(&reply).map_err(corrupt)?,
        reply_detail,
    })
}
