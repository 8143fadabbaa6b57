//! Delivery reports and bounces.

use async_trait::async_trait;

use super::{on_pool, SqlStore};
use crate::store::{ReceiptStore, StoreResult};

/// Applies the delivery reports kept while their messages were in flight:
/// delivered wins over failed, and a report never undoes a delivery. Each
/// binds `now` as `$1`; [`MARK_APPLIED`] follows them.
pub(super) const APPLY_PENDING: [&str; 2] = [
    "UPDATE messages SET status = 'delivered', delivered_at = $1, updated_at = $1 \
     WHERE status IN ('sent', 'failed') AND sent_at IS NOT NULL AND id IN \
     (SELECT message_id FROM receipts WHERE applied = 0 AND status = 'delivered')",
    "UPDATE messages SET status = 'failed', finished_at = $1, updated_at = $1 \
     WHERE status = 'sent' AND id IN \
     (SELECT message_id FROM receipts WHERE applied = 0 AND status = 'failed')",
];

/// The reports of messages no longer in flight are applied.
pub(super) const MARK_APPLIED: &str = "UPDATE receipts SET applied = 1 WHERE applied = 0 \
     AND message_id IN (SELECT id FROM messages WHERE status <> 'sending')";

#[async_trait]
impl ReceiptStore for SqlStore {
    async fn receipt_target(
        &self,
        message_id: i64,
    ) -> StoreResult<Option<crate::campaigns::ReceiptTarget>> {
        on_pool!(&self.pool, |pool| {
            Ok(
                sqlx::query_as("SELECT id, channel, address FROM messages WHERE id = $1")
                    .bind(message_id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    async fn apply_receipt(
        &self,
        r: &crate::campaigns::NewReceipt,
        now: i64,
    ) -> StoreResult<crate::campaigns::ReceiptOutcome> {
        on_pool!(&self.pool, |pool| {
            use crate::campaigns::{ReceiptEffect, ReceiptOutcome};
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO receipts (message_id, source, status, dedup_key, detail, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedup_key) DO NOTHING",
            )
            .bind(r.message_id)
            .bind(&r.source)
            .bind(r.effect.code())
            .bind(&r.dedup_key)
            .bind(&r.detail)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.commit().await?;
                return Ok(ReceiptOutcome::Replayed);
            }
            if let Some((scope, reason)) = &r.suppress {
                sqlx::query(
                    "INSERT INTO suppressions (address, channel, reason, source, created_at) \
                     SELECT LOWER(address), $1, $2, $3, $4 FROM messages WHERE id = $5 \
                     ON CONFLICT (address, channel) DO NOTHING",
                )
                .bind(scope.code())
                .bind(reason.code())
                .bind(format!("receipt:{}", r.source))
                .bind(now)
                .bind(r.message_id)
                .execute(&mut *tx)
                .await?;
            }
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
                    .bind(r.message_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = if status.as_deref() == Some("sending") && r.effect != ReceiptEffect::Info
            {
                ReceiptOutcome::Pending
            } else {
                if r.effect == ReceiptEffect::Failed {
                    sqlx::query(
                        "UPDATE messages SET last_code = COALESCE($1, last_code), \
                         last_reason = COALESCE($2, last_reason) WHERE id = $3 AND status = 'sent'",
                    )
                    .bind(&r.code)
                    .bind(&r.detail)
                    .bind(r.message_id)
                    .execute(&mut *tx)
                    .await?;
                }
                for sql in APPLY_PENDING {
                    sqlx::query(sql).bind(now).execute(&mut *tx).await?;
                }
                sqlx::query(MARK_APPLIED).execute(&mut *tx).await?;
                ReceiptOutcome::Applied
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }
}
