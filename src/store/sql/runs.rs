//! Runs: a campaign's audience frozen into the outbox, and how it is going.

use async_trait::async_trait;

use super::campaign_rows::placeholders;
use super::segment::segment_sql;
use super::{on_pool, SqlStore};
use crate::store::{CampaignCounts, RecentFailures, RunStore, StoreError, StoreResult, WindowWait};

/// How far back, in attempts of all campaigns, auto-pause looks for a
/// campaign's latest ones: enough for a hundred campaigns sending at once.
pub(super) const RECENT_ATTEMPTS: i64 = 20_000;

#[async_trait]
impl RunStore for SqlStore {
    async fn start_run(
        &self,
        campaign: &crate::campaigns::Campaign,
        period: &str,
        expires_at: Option<i64>,
        from: &[crate::campaigns::CampaignState],
        now: i64,
    ) -> StoreResult<crate::campaigns::RunStart> {
        let (channel, segment) = (campaign.channel, &campaign.segment);
        let to_running = format!(
            "UPDATE campaigns SET state = 'running', pause_reason = NULL, updated_at = $1 \
             WHERE id = $2 AND state IN ({})",
            placeholders(3, from.len())
        );
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let run_id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO runs (campaign_id, period, state, scheduled_for, started_at, expires_at) \
                 VALUES ($1, $2, 'running', $3, $3, $4) \
                 ON CONFLICT (campaign_id, period) DO NOTHING RETURNING id",
            )
            .bind(campaign.id)
            .bind(period)
            .bind(now)
            .bind(expires_at)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(run_id) = run_id else {
                let (run_id, total, no_address): (i64, i64, i64) = sqlx::query_as(
                    "SELECT id, total, no_address FROM runs WHERE campaign_id = $1 AND period = $2",
                )
                .bind(campaign.id)
                .bind(period)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(crate::campaigns::RunStart {
                    run_id,
                    created: false,
                    total,
                    suppressed: 0,
                    no_address,
                });
            };
            let address = super::address_column(channel);
            let (condition, binds) = segment_sql(segment, "c", 6);
            let freeze = format!(
                "INSERT INTO messages (run_id, campaign_id, contact_id, channel, address, kind, \
                 first_name, last_name, entity, country, language, credential, population, modality, \
                 status, next_attempt_at, last_reason, finished_at, created_at, updated_at) \
                 SELECT $1, $2, c.id, $3, c.{address}, c.kind, c.first_name, c.last_name, c.entity, \
                 c.country, c.language, c.credential, c.population, c.modality, \
                 CASE WHEN s.reason IS NULL THEN 'queued' ELSE 'suppressed' END, $4, s.reason, \
                 CASE WHEN s.reason IS NULL THEN NULL ELSE $4 END, $4, $4 \
                 FROM contacts c \
                 JOIN list_members lm ON lm.contact_id = c.id AND lm.list_id = $5 \
                 LEFT JOIN (SELECT address, MIN(reason) AS reason FROM suppressions \
                            WHERE channel IN ($3, 'all') GROUP BY address) s ON s.address = LOWER(c.{address}) \
                 WHERE c.{address} IS NOT NULL AND {condition} \
                 ON CONFLICT (run_id, contact_id, channel) DO NOTHING"
            );
            let mut q = sqlx::query(&freeze)
                .bind(run_id)
                .bind(campaign.id)
                .bind(channel.code())
                .bind(now)
                .bind(campaign.list_id);
            for b in &binds {
                q = q.bind(b);
            }
            q.execute(&mut *tx).await?;
            let missing = format!(
                "SELECT COUNT(*) FROM contacts c \
                 JOIN list_members lm ON lm.contact_id = c.id AND lm.list_id = $1 \
                 WHERE c.{address} IS NULL AND {}",
                segment_sql(segment, "c", 2).0
            );
            let mut q = sqlx::query_scalar::<_, i64>(&missing).bind(campaign.list_id);
            for b in &binds {
                q = q.bind(b);
            }
            let no_address = q.fetch_one(&mut *tx).await?;
            let (total, suppressed): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'suppressed') FROM messages WHERE run_id = $1",
            )
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("UPDATE runs SET total = $1, no_address = $2 WHERE id = $3")
                .bind(total)
                .bind(no_address)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            if !from.is_empty() {
                let mut q = sqlx::query(&to_running).bind(now).bind(campaign.id);
                for state in from {
                    q = q.bind(state.code());
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(crate::campaigns::RunStart {
                run_id,
                created: true,
                total,
                suppressed,
                no_address,
            })
        })
    }

    async fn record_missed_run(
        &self,
        campaign_id: i64,
        period: &str,
        due: i64,
        from: &[crate::campaigns::CampaignState],
        now: i64,
    ) -> StoreResult<bool> {
        let to_missed = format!(
            "UPDATE campaigns SET state = 'missed', updated_at = $1 \
             WHERE id = $2 AND recurrence IS NULL AND state IN ({})",
            placeholders(3, from.len())
        );
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO runs (campaign_id, period, state, scheduled_for, finished_at) \
                 VALUES ($1, $2, 'missed', $3, $4) ON CONFLICT (campaign_id, period) DO NOTHING",
            )
            .bind(campaign_id)
            .bind(period)
            .bind(due)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if !from.is_empty() {
                let mut q = sqlx::query(&to_missed).bind(now).bind(campaign_id);
                for state in from {
                    q = q.bind(state.code());
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(inserted == 1)
        })
    }

    async fn runs(&self, campaign_id: i64) -> StoreResult<Vec<crate::campaigns::Run>> {
        on_pool!(&self.pool, |pool| {
            Ok(sqlx::query_as(
                "SELECT id, campaign_id, period, state, scheduled_for, started_at, finished_at, \
                 expires_at, total, no_address FROM runs WHERE campaign_id = $1 ORDER BY id",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?)
        })
    }

    async fn recent_failures(
        &self,
        campaign_id: i64,
        since: i64,
        window: i64,
    ) -> StoreResult<RecentFailures> {
        on_pool!(&self.pool, |pool| {
            // Runs every second while sending: it walks attempts newest
            // first and stops at `window` of this campaign (CROSS JOIN keeps
            // SQLite from starting at the campaign's messages and sorting
            // all their attempts, a second a call at a million), and never
            // looks further back than the last RECENT_ATTEMPTS of all
            // campaigns together (or `window`, if that is larger).
            let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT a.outcome, a.code, a.reason FROM attempts a \
                 CROSS JOIN messages m \
                 WHERE m.id = a.message_id AND m.campaign_id = $1 \
                 AND a.id > (SELECT COALESCE(MAX(id), 0) FROM attempts) - $3 \
                 AND a.at >= $4 \
                 ORDER BY a.id DESC LIMIT $2",
            )
            .bind(campaign_id)
            .bind(window)
            .bind(window.max(RECENT_ATTEMPTS))
            .bind(since)
            .fetch_all(pool)
            .await?;
            let failed = |o: &str| o == "permanent" || o == "exhausted";
            let failures = rows.iter().filter(|(o, _, _)| failed(o)).count() as i64;
            let last = rows
                .iter()
                .find(|(o, _, _)| failed(o))
                .map(|(_, code, reason)| {
                    [code.as_deref(), reason.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ")
                });
            Ok(RecentFailures {
                attempts: rows.len() as i64,
                failed: failures,
                last,
            })
        })
    }

    async fn retry_failed(
        &self,
        campaign_id: i64,
        from: &[crate::campaigns::CampaignState],
        now: i64,
    ) -> StoreResult<u64> {
        let to_running = format!(
            "UPDATE campaigns SET state = 'running', pause_reason = NULL, updated_at = $1 \
             WHERE id = $2 AND state IN ({})",
            placeholders(3, from.len())
        );
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE messages SET status = 'queued', series = series + 1, attempts = 0, \
                 next_attempt_at = $1, finished_at = NULL, updated_at = $1 \
                 WHERE campaign_id = $2 AND status = 'failed' AND permanent = 0 AND sent_at IS NULL",
            )
            .bind(now)
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                sqlx::query(
                    "UPDATE runs SET state = 'running', finished_at = NULL WHERE campaign_id = $1 \
                     AND id IN (SELECT DISTINCT run_id FROM messages WHERE campaign_id = $1 AND status = 'queued')",
                )
                .bind(campaign_id)
                .execute(&mut *tx)
                .await?;
                if !from.is_empty() {
                    let mut q = sqlx::query(&to_running).bind(now).bind(campaign_id);
                    for state in from {
                        q = q.bind(state.code());
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    async fn waiting_for_window(&self, campaign_id: i64, now: i64) -> StoreResult<WindowWait> {
        on_pool!(&self.pool, |pool| {
            let (waiting, next_opens) = sqlx::query_as(
                "SELECT COUNT(*), MIN(next_attempt_at) FROM messages \
                 WHERE campaign_id = $1 AND status IN ('queued', 'retrying') \
                 AND last_code = 'window' AND next_attempt_at > $2",
            )
            .bind(campaign_id)
            .bind(now)
            .fetch_one(pool)
            .await?;
            Ok(WindowWait {
                waiting,
                next_opens,
            })
        })
    }

    async fn status_counts(&self, campaign_id: i64) -> StoreResult<CampaignCounts> {
        on_pool!(&self.pool, |pool| {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM messages WHERE campaign_id = $1 GROUP BY status",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?;
            let mut counts = crate::campaigns::StatusCounts::default();
            for (status, n) in rows {
                let status = crate::campaigns::MessageStatus::parse(&status)
                    .map_err(|e| StoreError::Corrupt(format!("message status: {e}")))?;
                counts.add(status, n);
            }
            let no_address: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(no_address), 0) AS BIGINT) FROM runs WHERE campaign_id = $1",
            )
            .bind(campaign_id)
            .fetch_one(pool)
            .await?;
            Ok(CampaignCounts {
                messages: counts,
                no_address,
            })
        })
    }

    async fn cancel_pending(&self, campaign_id: i64, now: i64) -> StoreResult<u64> {
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE messages SET status = 'cancelled', finished_at = $1, updated_at = $1 \
                 WHERE campaign_id = $2 AND status IN ('queued', 'retrying')",
            )
            .bind(now)
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE runs SET state = 'cancelled', finished_at = $1 WHERE campaign_id = $2 AND state = 'running'",
            )
            .bind(now)
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(n)
        })
    }
}
