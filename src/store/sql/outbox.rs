//! The outbox: workers claim messages, record what happened, hand them back.

use async_trait::async_trait;

use super::{on_pool, SqlStore};
use crate::store::{OutboxStore, StoreResult};

/// The message columns a claim returns, in `ClaimedMessage` order.
pub(super) const CLAIMED_COLUMNS: &str = "id, run_id, campaign_id, contact_id, channel, address, \
     kind, first_name, last_name, entity, country, language, credential, population, modality, \
     attempts, lease_epoch";

/// Leases due messages of a running campaign; binds: worker, lease expiry,
/// now, campaign, limit. `lock` is the backend's row-locking clause.
pub(super) fn claim_sql(lock: &str) -> String {
    format!(
        "UPDATE messages SET status = 'sending', lease_owner = $1, lease_expires_at = $2, \
         lease_epoch = lease_epoch + 1, updated_at = $3 \
         WHERE id IN (SELECT id FROM messages WHERE campaign_id = $4 \
           AND status IN ('queued', 'retrying') AND next_attempt_at <= $3 \
           AND EXISTS (SELECT 1 FROM campaigns WHERE id = $4 AND state = 'running') \
           LIMIT $5{lock}) \
         RETURNING {CLAIMED_COLUMNS}"
    )
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn claim(
        &self,
        campaign_id: i64,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::campaigns::ClaimedMessage>> {
        on_pool!(&self.pool, |pool| {
            let sql = claim_sql(self.dialect().claim_lock);
            Ok(sqlx::query_as(&sql)
                .bind(worker)
                .bind(now + lease_ms)
                .bind(now)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?)
        })
    }

    async fn claim_capped(
        &self,
        campaign_id: i64,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
        policy: &crate::domain::CapPolicy,
    ) -> StoreResult<crate::store::CappedClaim> {
        self.claim_within_cap(campaign_id, worker, now, lease_ms, limit, policy)
            .await
    }

    async fn record_outcomes(
        &self,
        worker: &str,
        outcomes: &[crate::campaigns::Outcome],
        now: i64,
    ) -> StoreResult<crate::campaigns::RecordReport> {
        self.write_outcomes(worker, outcomes, now).await
    }

    async fn extend_leases(&self, worker: &str, until: i64) -> StoreResult<u64> {
        on_pool!(&self.pool, |pool| {
            Ok(sqlx::query(
                "UPDATE messages SET lease_expires_at = $1 WHERE lease_owner = $2 AND status = 'sending'",
            )
            .bind(until)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected())
        })
    }

    async fn release(&self, worker: &str, ids: &[i64], now: i64) -> StoreResult<u64> {
        on_pool!(&self.pool, |pool| {
            let mut released = 0;
            for chunk in ids.chunks(1000) {
                let mut q = sqlx::QueryBuilder::new(
                    "UPDATE messages SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, \
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = ",
                );
                q.push_bind(now)
                    .push(" WHERE status = 'sending' AND lease_owner = ")
                    .push_bind(worker)
                    .push(" AND id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                q.push(")");
                released += q.build().execute(pool).await?.rows_affected();
            }
            Ok(released)
        })
    }

    async fn housekeeping(&self, now: i64) -> StoreResult<()> {
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE messages SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
                 WHERE status = 'sending' AND lease_expires_at <= $1",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE messages SET status = 'cancelled', finished_at = $1, updated_at = $1 \
                 WHERE status IN ('queued', 'retrying') \
                 AND campaign_id IN (SELECT id FROM campaigns WHERE state = 'cancelled')",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                // The campaign condition follows from the run's; it lets
                // messages_campaign find the waiting messages directly.
                "UPDATE messages SET status = 'expired', last_reason = 'the campaign expired before it could be sent', \
                 finished_at = $1, updated_at = $1 WHERE status IN ('queued', 'retrying') \
                 AND campaign_id IN (SELECT campaign_id FROM runs WHERE state = 'running' AND expires_at <= $1) \
                 AND run_id IN (SELECT id FROM runs WHERE state = 'running' AND expires_at <= $1)",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                // By campaign and status, so messages_campaign serves it:
                // by run alone it would walk past every message already sent.
                "UPDATE runs SET state = 'completed', finished_at = $1 WHERE state = 'running' \
                 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = runs.campaign_id \
                                 AND m.status IN ('queued', 'sending', 'retrying') AND m.run_id = runs.id)",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE campaigns SET state = 'completed', updated_at = $1 \
                 WHERE state = 'running' AND recurrence IS NULL \
                 AND EXISTS (SELECT 1 FROM runs r WHERE r.campaign_id = campaigns.id) \
                 AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.campaign_id = campaigns.id AND r.state = 'running')",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE campaigns SET state = 'scheduled', updated_at = $1 \
                 WHERE state = 'running' AND recurrence IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.campaign_id = campaigns.id AND r.state = 'running')",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM workers WHERE heartbeat_at + lease_ms < $1")
                .bind(now - crate::store::LOST_WORKERS_KEPT_MS)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}
