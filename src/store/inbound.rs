//! The SQL of citizens' SMS replies (BAJA / ALTA), shared by both backends
//! like `portable.rs`, but generic over the database instead of inside its
//! macro, so the feature keeps its own file.

use sqlx::{Database, Pool};

use super::StoreResult;
use crate::domain::{PhoneNumber, SuppressionReason};
use crate::replies::{
    AppliedReply, InboundRecord, InboundSource, NewInbound, ReplyAction, ReplyKeyword, ReplyStatus,
};

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

pub(super) struct InboundSql<'a, DB: Database>(pub &'a Pool<DB>);

impl<DB> InboundSql<'_, DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    String: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    Option<String>: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Applies what the SMS asks for and records it, in one transaction.
    pub(super) async fn apply(&self, inbound: &NewInbound, now: i64) -> StoreResult<AppliedReply> {
        let phone = inbound.phone.as_str().to_string();
        let mut tx = self.0.begin().await?;
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
                            super::StoreError::Corrupt(format!("a suppression's reason: {e}"))
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
    }

    pub(super) async fn record_reply(
        &self,
        id: i64,
        status: ReplyStatus,
        detail: Option<String>,
    ) -> StoreResult<bool> {
        let mut conn = self.0.acquire().await?;
        let updated: Option<i64> = sqlx::query_scalar(
            "UPDATE inbound SET reply = $1, reply_detail = $2 WHERE id = $3 RETURNING id",
        )
        .bind(status.code().to_string())
        .bind(detail)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(updated.is_some())
    }

    pub(super) async fn log(&self, after_id: i64, limit: i64) -> StoreResult<Vec<InboundRecord>> {
        let mut conn = self.0.acquire().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, received_at, source, phone, text, keyword, action, reply, reply_detail \
             FROM inbound WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter().map(record).collect()
    }
}

/// Reads a row back, re-checking every value.
fn record(row: Row) -> StoreResult<InboundRecord> {
    let (id, received_at, source, phone, text, keyword, action, reply, reply_detail) = row;
    let corrupt =
        |e: crate::domain::Invalid| super::StoreError::Corrupt(format!("inbound SMS {id}: {e}"));
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
