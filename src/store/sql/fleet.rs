//! Workers as one sender: the shared pace per provider, and heartbeats.

use async_trait::async_trait;

use super::{on_pool, SqlStore};
use crate::store::{FleetStore, StoreResult};

#[async_trait]
impl FleetStore for SqlStore {
    async fn save_provider_state(&self, p: &crate::store::ProviderState) -> StoreResult<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO provider_state (name, rate, base_rate, reason, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET rate = excluded.rate, base_rate = excluded.base_rate, \
                 reason = excluded.reason, updated_at = excluded.updated_at",
            )
            .bind(&p.name)
            .bind(p.rate)
            .bind(p.base_rate)
            .bind(&p.reason)
            .bind(p.updated_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn provider_states(&self) -> StoreResult<Vec<crate::store::ProviderState>> {
        on_pool!(&self.pool, |pool| {
            Ok(sqlx::query_as(
                "SELECT name, rate, base_rate, reason, updated_at FROM provider_state ORDER BY name",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    async fn report_slow_down(&self, provider: &str, at: i64) -> StoreResult<()> {
        on_pool!(&self.pool, |pool| {
            // A new row is an unlimited provider's (rate 0) that no worker has described yet.
            sqlx::query(
                "INSERT INTO provider_state (name, rate, base_rate, reason, updated_at, slowed_at) \
                 VALUES ($1, 0, 0, NULL, $2, $2) \
                 ON CONFLICT (name) DO UPDATE SET slowed_at = CASE \
                 WHEN provider_state.slowed_at > excluded.slowed_at THEN provider_state.slowed_at \
                 ELSE excluded.slowed_at END",
            )
            .bind(provider)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn slow_downs(&self) -> StoreResult<Vec<crate::store::SlowDown>> {
        on_pool!(&self.pool, |pool| {
            Ok(
                sqlx::query_as("SELECT name, slowed_at FROM provider_state ORDER BY name")
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    async fn take_pace(
        &self,
        name: &str,
        ceiling: f64,
        slots: u32,
        signal: Option<crate::store::PaceSignal>,
        now: f64,
    ) -> StoreResult<crate::store::PaceGrant> {
        on_pool!(&self.pool, |pool| {
            // One row per provider, locked by the first statement until
            // the commit: on PostgreSQL, workers taking slots at the same
            // moment queue for it, and none can take a slot another took.
            let mut tx = pool.begin().await?;
            let at = now as i64;
            sqlx::query(
                // A changed configuration takes effect: a rate in force that
                // was not slowed down follows the new ceiling, a slowed one
                // stays slowed, but never above it.
                "INSERT INTO provider_state (name, rate, base_rate, reason, updated_at, next_free, changed_at) \
                 VALUES ($1, $2, $2, NULL, $3, 0, 0) \
                 ON CONFLICT (name) DO UPDATE SET \
                   rate = CASE WHEN provider_state.rate <= 0 OR provider_state.rate >= provider_state.base_rate \
                                 OR provider_state.rate > excluded.base_rate \
                               THEN excluded.base_rate ELSE provider_state.rate END, \
                   base_rate = excluded.base_rate",
            )
            .bind(name)
            .bind(ceiling)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let adjust = match signal {
                // Every refusal holds recovery back; the rate halves at most once a step.
                Some(crate::store::PaceSignal::SlowDown { .. }) => Some((
                    "UPDATE provider_state SET slowed_at = $3, \
                     rate = CASE WHEN changed_at > $4 THEN rate WHEN rate / 2 >= $2 THEN rate / 2 \
                                 WHEN rate < $2 THEN rate ELSE $2 END, \
                     changed_at = CASE WHEN changed_at > $4 THEN changed_at ELSE $3 END \
                     WHERE name = $1",
                    crate::store::PACE_FLOOR,
                )),
                Some(crate::store::PaceSignal::Recovered) => Some((
                    "UPDATE provider_state SET changed_at = $3, \
                     rate = CASE WHEN rate * $2 > base_rate THEN base_rate ELSE rate * $2 END \
                     WHERE name = $1 AND rate < base_rate AND changed_at <= $4 AND slowed_at <= $4",
                    crate::store::PACE_RECOVERY,
                )),
                None => None,
            };
            if let Some((sql, factor)) = adjust {
                sqlx::query(sql)
                    .bind(name)
                    .bind(factor)
                    .bind(at)
                    .bind(at - crate::store::PACE_STEP_MS)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(crate::store::PaceSignal::SlowDown {
                retry_after_ms: Some(wait),
            }) = signal
            {
                sqlx::query(
                    "UPDATE provider_state SET \
                     next_free = CASE WHEN next_free < $2 THEN $2 ELSE next_free END WHERE name = $1",
                )
                .bind(name)
                .bind(now + wait as f64)
                .execute(&mut *tx)
                .await?;
            }
            let (next_free, rate): (f64, f64) = sqlx::query_as(
                // Slots left unused in the past are gone: a worker that
                // was idle gets no burst, and the fleet never exceeds the rate.
                "UPDATE provider_state SET \
                 next_free = (CASE WHEN next_free > $2 THEN next_free ELSE $2 END) + $3 * 1000 / rate, \
                 reason = CASE WHEN rate < base_rate THEN $4 ELSE NULL END, updated_at = $5 \
                 WHERE name = $1 RETURNING next_free, rate",
            )
            .bind(name)
            .bind(now)
            .bind(f64::from(slots))
            .bind(crate::store::SLOWED_REASON)
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(crate::store::PaceGrant {
                first_slot: next_free - f64::from(slots) * 1000.0 / rate,
                rate,
            })
        })
    }

    async fn register_worker(&self, w: &crate::store::WorkerInfo, now: i64) -> StoreResult<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO workers (id, host, pid, version, lease_ms, started_at, heartbeat_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
                 version = excluded.version, lease_ms = excluded.lease_ms, \
                 started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
            )
            .bind(&w.id)
            .bind(&w.host)
            .bind(w.pid)
            .bind(&w.version)
            .bind(w.lease_ms)
            .bind(w.started_at)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn worker_heartbeat(&self, id: &str, now: i64) -> StoreResult<bool> {
        on_pool!(&self.pool, |pool| {
            Ok(
                sqlx::query("UPDATE workers SET heartbeat_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    == 1,
            )
        })
    }

    async fn deregister_worker(&self, id: &str) -> StoreResult<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query("DELETE FROM workers WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn workers(&self) -> StoreResult<Vec<crate::store::WorkerRow>> {
        on_pool!(&self.pool, |pool| {
            let rows: Vec<(String, String, i64, String, i64, i64, i64)> = sqlx::query_as(
                "SELECT id, host, pid, version, lease_ms, started_at, heartbeat_at FROM workers \
                 ORDER BY started_at, id",
            )
            .fetch_all(pool)
            .await?;
            // Leased messages are in status `sending`, which messages_lease finds.
            let leased: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT lease_owner, campaign_id, COUNT(*) FROM messages \
                 WHERE status = 'sending' AND lease_owner IN (SELECT id FROM workers) \
                 GROUP BY lease_owner, campaign_id ORDER BY lease_owner, campaign_id",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, host, pid, version, lease_ms, started_at, heartbeat_at)| {
                        let held = leased
                            .iter()
                            .filter(|(owner, _, _)| *owner == id)
                            .map(|(_, campaign, n)| (*campaign, *n))
                            .collect();
                        crate::store::WorkerRow {
                            info: crate::store::WorkerInfo {
                                id,
                                host,
                                pid,
                                version,
                                lease_ms,
                                started_at,
                            },
                            heartbeat_at,
                            leased: held,
                        }
                    },
                )
                .collect())
        })
    }
}
