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
