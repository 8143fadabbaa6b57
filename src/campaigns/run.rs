//! Starting a run: the one way `campaign start` and the scheduler freeze a
//! campaign's audience into the outbox.

use chrono::Datelike;
use chrono_tz::Tz;

use super::{Campaign, RunStart, Transition};
use crate::store::{Store, StoreResult};

/// The period a run started by hand at `now` belongs to: `once` for a one-off
/// campaign, the current month (in `zone`) for a monthly one.
pub fn period_at(campaign: &Campaign, zone: Tz, now: i64) -> String {
    match campaign.recurrence {
        None => "once".to_string(),
        Some(_) => {
            let local = chrono::DateTime::from_timestamp_millis(now)
                .unwrap_or_default()
                .with_timezone(&zone);
            crate::schedule::period_key(local.year(), local.month())
        }
    }
}

/// Starts run `period` of `campaign`: its audience is frozen into the outbox,
/// its messages expire at the campaign's expiry (or that long after `now`),
/// and the campaign becomes running if its state allows a start. A period
/// that already has a run queues nothing.
pub async fn start_run(
    store: &dyn Store,
    campaign: &Campaign,
    period: &str,
    now: i64,
) -> StoreResult<RunStart> {
    let expires_at = campaign
        .expires_at
        .or(campaign.expires_after.map(|after| now + after));
    store
        .start_run(
            campaign,
            period,
            expires_at,
            Transition::Start.from_states(),
            now,
        )
        .await
}
