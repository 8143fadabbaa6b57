//! The frequency cap in the store: a capped campaign's claim decides, in the
//! claim's own transaction, which of the messages it leased may go.
//!
//! Why at claim time, with a ledger and a lock row per recipient: the cap is
//! shared by campaigns that run at once, on workers that claim at once. Each
//! capped claim first locks its recipients' rows in `cap_recipients`, always in
//! the same order (so two claims never wait on each other in a cycle); a second
//! claim for the same recipient waits there until the first commits, and then
//! counts the ledger rows the first added. The ledger (`cap_ledger`) has a row
//! per message let through, so a message claimed again (lease expired, retry)
//! keeps its place instead of taking another. Campaigns without a cap never
//! come here: their claim is the plain one, with no extra statement.

use std::collections::{HashMap, HashSet};

use crate::campaigns::ClaimedMessage;
use crate::domain::{CapPolicy, WhenCapped};

/// What a capped claim did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CappedClaim {
    /// Leased to the worker: within the cap.
    pub claimed: Vec<ClaimedMessage>,
    /// Held for good (`capped`).
    pub held: u64,
    /// Back to the queue until the cap leaves room.
    pub deferred: u64,
}

/// The fate of one claimed message under the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Send,
    Hold,
    /// Not before this time (ms).
    Defer(i64),
}

/// The key a cap counts by: the channel's address as the recipient holds it,
/// so that two contacts sharing a phone share its cap.
pub(super) fn recipient(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Decides for each of `claimed` (ids and recipients): `holding` already have
/// a place (claimed before); `recent` are the times of the other messages
/// counted against each recipient within the period. Places already held are
/// counted first, then new messages take what is left in id order.
pub(super) fn decide(
    claimed: &[(i64, String)],
    holding: &HashSet<i64>,
    mut recent: HashMap<String, Vec<i64>>,
    policy: &CapPolicy,
    now: i64,
) -> HashMap<i64, Decision> {
    let limit = policy.cap.count() as usize;
    let mut decisions = HashMap::with_capacity(claimed.len());
    for (id, to) in claimed.iter().filter(|(id, _)| holding.contains(id)) {
        recent.entry(to.clone()).or_default().push(now);
        decisions.insert(*id, Decision::Send);
    }
    let mut ids: Vec<&(i64, String)> = claimed
        .iter()
        .filter(|(id, _)| !holding.contains(id))
        .collect();
    ids.sort_by_key(|(id, _)| *id);
    for (id, to) in ids {
        let times = recent.entry(to.clone()).or_default();
        if times.len() < limit {
            times.push(now);
            decisions.insert(*id, Decision::Send);
            continue;
        }
        let decision = match policy.when {
            WhenCapped::Hold => Decision::Hold,
            WhenCapped::Defer => {
                // Room comes when enough of the counted messages leave the
                // period for one more to fit: the oldest of the last `limit`.
                times.sort_unstable();
                let leaving = times[times.len() - limit];
                Decision::Defer((leaving + policy.cap.period_ms()).max(now + 1))
            }
        };
        decisions.insert(*id, decision);
    }
    decisions
}

/// Why a message was held or deferred, for the ledger and `campaign status`.
pub(super) fn reason(policy: &CapPolicy, channel: &str) -> String {
    match policy.when {
        WhenCapped::Hold => format!(
            "held: the recipient already had the {} {channel} message(s) the frequency cap {} allows",
            policy.cap.count(),
            policy.cap
        ),
        WhenCapped::Defer => format!(
            "waiting for the frequency cap {}: the recipient already had {} {channel} message(s) in the period",
            policy.cap,
            policy.cap.count()
        ),
    }
}

macro_rules! cap_store {
    ($store:ty, $db:ty, $claim_lock:literal) => {
        impl $store {
            async fn save_frequency_cap(
                tx: &mut sqlx::Transaction<'_, $db>,
                campaign_id: i64,
                policy: &$crate::domain::CapPolicy,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO campaign_caps (campaign_id, cap_count, period_ms, when_capped) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(campaign_id)
                .bind(i64::from(policy.cap.count()))
                .bind(policy.cap.period_ms())
                .bind(policy.when.code())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn read_frequency_cap(
                &self,
                campaign_id: i64,
            ) -> StoreResult<Option<$crate::domain::CapPolicy>> {
                let row: Option<(i64, i64, String)> = sqlx::query_as(
                    "SELECT cap_count, period_ms, when_capped FROM campaign_caps WHERE campaign_id = $1",
                )
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some((count, period_ms, when)) = row else {
                    return Ok(None);
                };
                let corrupt = |e: $crate::domain::Invalid| {
                    StoreError::Corrupt(format!("frequency cap of campaign {campaign_id}: {e}"))
                };
                let count = u32::try_from(count)
                    .map_err(|_| corrupt($crate::domain::Invalid(format!("count {count}"))))?;
                Ok(Some($crate::domain::CapPolicy {
                    cap: $crate::domain::FrequencyCap::new(count, period_ms).map_err(corrupt)?,
                    when: $crate::domain::WhenCapped::parse(&when).map_err(corrupt)?,
                }))
            }

            async fn claim_within_cap(
                &self,
                campaign_id: i64,
                worker: &str,
                now: i64,
                lease_ms: i64,
                limit: i64,
                policy: &$crate::domain::CapPolicy,
            ) -> StoreResult<super::cap::CappedClaim> {
                use super::cap::{decide, reason, recipient, Decision};
                let mut tx = self.pool.begin().await?;
                let claimed: Vec<$crate::campaigns::ClaimedMessage> =
                    sqlx::query_as(&super::portable::claim_sql($claim_lock))
                        .bind(worker)
                        .bind(now + lease_ms)
                        .bind(now)
                        .bind(campaign_id)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                let Some(channel) = claimed.first().map(|m| m.channel.clone()) else {
                    tx.commit().await?;
                    return Ok(super::cap::CappedClaim::default());
                };
                let to: Vec<(i64, String)> =
                    claimed.iter().map(|m| (m.id, recipient(&m.address))).collect();
                let mut recipients: Vec<&str> = to.iter().map(|(_, r)| r.as_str()).collect();
                recipients.sort_unstable();
                recipients.dedup();

                // Lock the recipients, in order: see the module's comment.
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO cap_recipients (channel, address, claimed_at) ",
                );
                q.push_values(&recipients, |mut row, address| {
                    row.push_bind(&channel).push_bind(*address).push_bind(now);
                });
                q.push(" ON CONFLICT (channel, address) DO UPDATE SET claimed_at = excluded.claimed_at");
                q.build().execute(&mut *tx).await?;

                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT message_id FROM cap_ledger WHERE message_id IN (",
                );
                let mut ids = q.separated(", ");
                for (id, _) in &to {
                    ids.push_bind(*id);
                }
                q.push(")");
                let holding: std::collections::HashSet<i64> = q.build_query_scalar().fetch_all(&mut *tx).await?.into_iter().collect();

                // What counts: messages let through within the period that did
                // not end unsent. The claimed ones' own places are counted by `decide`.
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT l.address, l.at FROM cap_ledger l JOIN messages m ON m.id = l.message_id \
                     WHERE m.status NOT IN ('expired', 'cancelled', 'capped') AND l.channel = ",
                );
                q.push_bind(&channel)
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
                for (address, at) in q.build_query_as::<(String, i64)>().fetch_all(&mut *tx).await? {
                    recent.entry(address).or_default().push(at);
                }
                let decisions = decide(&to, &holding, recent, policy, now);

                let mut result = super::cap::CappedClaim::default();
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
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO cap_ledger (message_id, channel, address, at) ",
                    );
                    q.push_values(&places, |mut row, (id, address)| {
                        row.push_bind(*id).push_bind(&channel).push_bind(*address).push_bind(now);
                    });
                    q.push(" ON CONFLICT (message_id) DO UPDATE SET at = excluded.at");
                    q.build().execute(&mut *tx).await?;
                    // A deferred message that now fits no longer waits for the cap.
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE messages SET last_code = NULL, last_reason = NULL WHERE last_code = 'cap' AND id IN (",
                    );
                    let mut ids = q.separated(", ");
                    for (id, _) in &places {
                        ids.push_bind(*id);
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await?;
                }
                let why = reason(policy, &channel);
                if !held.is_empty() {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
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
                    let mut q = sqlx::QueryBuilder::<$db>::new("WITH v(mid, at_ms) AS (");
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
                        .push(", lease_owner = NULL, lease_expires_at = NULL \
                               WHERE status = 'sending' AND id IN (SELECT mid FROM v)");
                    result.deferred = q.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(result)
            }
        }
    };
}

pub(super) use cap_store;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FrequencyCap;

    const DAY: i64 = 86_400_000;

    fn policy(cap: &str, when: WhenCapped) -> CapPolicy {
        CapPolicy {
            cap: FrequencyCap::parse(cap).unwrap(),
            when,
        }
    }

    #[test]
    fn new_messages_take_what_the_period_leaves_in_id_order() {
        let claimed = vec![
            (3, "a".to_string()),
            (1, "a".to_string()),
            (2, "b".to_string()),
            (4, "a".to_string()),
        ];
        let recent = HashMap::from([("a".to_string(), vec![10 * DAY - 5])]);
        let d = decide(
            &claimed,
            &HashSet::new(),
            recent,
            &policy("2/1d", WhenCapped::Hold),
            10 * DAY,
        );
        assert_eq!(d[&1], Decision::Send);
        assert_eq!(d[&2], Decision::Send);
        assert_eq!(d[&3], Decision::Hold);
        assert_eq!(d[&4], Decision::Hold);
    }

    #[test]
    fn a_message_holding_a_place_goes_and_counts_first() {
        let claimed = vec![(1, "a".to_string()), (2, "a".to_string())];
        let d = decide(
            &claimed,
            &HashSet::from([2]),
            HashMap::new(),
            &policy("1/1d", WhenCapped::Hold),
            DAY,
        );
        assert_eq!((d[&1], d[&2]), (Decision::Hold, Decision::Send));
    }

    #[test]
    fn deferred_messages_wait_for_the_oldest_counted_to_leave_the_period() {
        let now = 10 * DAY;
        let recent = HashMap::from([("a".to_string(), vec![now - 100, now - 300, now - 200])]);
        let d = decide(
            &[(1, "a".to_string())],
            &HashSet::new(),
            recent,
            &policy("2/1d", WhenCapped::Defer),
            now,
        );
        // Two allowed: room comes when the second newest (now - 200) leaves.
        assert_eq!(d[&1], Decision::Defer(now - 200 + DAY));
    }
}
