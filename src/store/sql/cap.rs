//! The frequency cap's claim (see `store/cap.rs` for why it works this way).

use super::{on_pool, SqlStore};
use crate::store::StoreResult;

impl SqlStore {
    pub(super) async fn claim_within_cap(
        &self,
        campaign_id: i64,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
        policy: &crate::domain::CapPolicy,
    ) -> StoreResult<crate::store::cap::CappedClaim> {
        on_pool!(&self.pool, |pool| {
            use crate::store::cap::{decide, reason, recipient, Decision};
            let mut tx = pool.begin().await?;
            let claimed: Vec<crate::campaigns::ClaimedMessage> =
                sqlx::query_as(&super::outbox::claim_sql(self.dialect().claim_lock))
                    .bind(worker)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(campaign_id)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
            let Some(channel) = claimed.first().map(|m| m.channel.code()) else {
                tx.commit().await?;
                return Ok(crate::store::cap::CappedClaim::default());
            };
            let to: Vec<(i64, String)> = claimed
                .iter()
                .map(|m| (m.id, recipient(&m.address)))
                .collect();
            let mut recipients: Vec<&str> = to.iter().map(|(_, r)| r.as_str()).collect();
            recipients.sort_unstable();
            recipients.dedup();

            // Lock the recipients, in order: see the module's comment.
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO cap_recipients (channel, address, claimed_at) ",
            );
            q.push_values(&recipients, |mut row, address| {
                row.push_bind(channel).push_bind(*address).push_bind(now);
            });
            q.push(
                " ON CONFLICT (channel, address) DO UPDATE SET claimed_at = excluded.claimed_at",
            );
            q.build().execute(&mut *tx).await?;

            let mut q =
                sqlx::QueryBuilder::new("SELECT message_id FROM cap_ledger WHERE message_id IN (");
            let mut ids = q.separated(", ");
            for (id, _) in &to {
                ids.push_bind(*id);
            }
            q.push(")");
            let holding: std::collections::HashSet<i64> = q
                .build_query_scalar()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();

            // What counts: messages let through within the period that did
            // not end unsent. The claimed ones' own places are counted by `decide`.
            let mut q = sqlx::QueryBuilder::new(
                "SELECT l.address, l.at FROM cap_ledger l JOIN messages m ON m.id = l.message_id \
                 WHERE m.status NOT IN ('expired', 'cancelled', 'capped') AND l.channel = ",
            );
            q.push_bind(channel)
                .push(" AND l.at > ")
                .push_bind(now - policy.cap.period_ms())
                .push(" AND l.address IN (");
            let mut addresses = q.separated(", ");
            for address in &recipients {
                addresses.push_bind(*address);
            }
            q.push(") AND l.message_id NOT IN (");
            let mut ids = q.separated(", ");
            for (id, _) in &to {
                ids.push_bind(*id);
            }
            q.push(")");
            let mut recent: std::collections::HashMap<String, Vec<i64>> =
                std::collections::HashMap::new();
            for (address, at) in q
                .build_query_as::<(String, i64)>()
                .fetch_all(&mut *tx)
                .await?
            {
                recent.entry(address).or_default().push(at);
            }
            let decisions = decide(&to, &holding, recent, policy, now);

            let mut result = crate::store::cap::CappedClaim::default();
            let mut deferred: Vec<(i64, i64)> = Vec::new();
            let mut held: Vec<i64> = Vec::new();
            let mut places: Vec<(i64, &str)> = Vec::new();
            for (m, (_, address)) in claimed.into_iter().zip(&to) {
                match decisions.get(&m.id) {
                    Some(Decision::Hold) => held.push(m.id),
                    Some(Decision::Defer(until)) => deferred.push((m.id, *until)),
                    _ => {
                        places.push((m.id, address.as_str()));
                        result.claimed.push(m);
                    }
                }
            }
            if !places.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO cap_ledger (message_id, channel, address, at) ",
                );
                q.push_values(&places, |mut row, (id, address)| {
                    row.push_bind(*id)
                        .push_bind(channel)
                        .push_bind(*address)
                        .push_bind(now);
                });
                q.push(" ON CONFLICT (message_id) DO UPDATE SET at = excluded.at");
                q.build().execute(&mut *tx).await?;
                // A deferred message that now fits no longer waits for the cap.
                let mut q = sqlx::QueryBuilder::new(
                    "UPDATE messages SET last_code = NULL, last_reason = NULL WHERE last_code = 'cap' AND id IN (",
                );
                let mut ids = q.separated(", ");
                for (id, _) in &places {
                    ids.push_bind(*id);
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
            }
            let why = reason(policy, channel);
            if !held.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "UPDATE messages SET status = 'capped', last_code = 'cap', last_reason = ",
                );
                q.push_bind(&why)
                    .push(", finished_at = ")
                    .push_bind(now)
                    .push(", updated_at = ")
                    .push_bind(now)
                    .push(", lease_owner = NULL, lease_expires_at = NULL WHERE status = 'sending' AND id IN (");
                let mut ids = q.separated(", ");
                for id in &held {
                    ids.push_bind(*id);
                }
                q.push(")");
                result.held = q.build().execute(&mut *tx).await?.rows_affected();
            }
            if !deferred.is_empty() {
                let mut q = sqlx::QueryBuilder::new("WITH v(mid, at_ms) AS (");
                q.push_values(&deferred, |mut row, (id, until)| {
                    row.push("CAST(")
                        .push_bind_unseparated(*id)
                        .push_unseparated(" AS BIGINT)")
                        .push("CAST(")
                        .push_bind_unseparated(*until)
                        .push_unseparated(" AS BIGINT)");
                });
                q.push(
                    ") UPDATE messages SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, \
                     next_attempt_at = (SELECT at_ms FROM v WHERE v.mid = messages.id), last_code = 'cap', last_reason = ",
                );
                q.push_bind(&why)
                    .push(", updated_at = ")
                    .push_bind(now)
                    .push(
                        ", lease_owner = NULL, lease_expires_at = NULL \
                           WHERE status = 'sending' AND id IN (SELECT mid FROM v)",
                    );
                result.deferred = q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(result)
        })
    }
}
