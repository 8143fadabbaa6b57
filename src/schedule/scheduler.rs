//! The scheduler: which runs of which campaigns are due, started or missed.

use chrono::{DateTime, Datelike};
use chrono_tz::Tz;

use super::period_key;
use crate::campaigns::{Campaign, CampaignState, RunStart, Transition};
use crate::store::{Store, StoreResult};

/// The settings the scheduler works with.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub zone: Tz,
    /// A run found later than this after its time is recorded as missed.
    pub grace_ms: i64,
    /// Refuses runs over budget; `None` starts every run.
    pub budget: Option<crate::cost::BudgetGuard>,
}

/// A run the scheduler dealt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    Started {
        campaign: i64,
        period: String,
        run: RunStart,
    },
    Missed {
        campaign: i64,
        period: String,
    },
}

/// One pass of the scheduler: starts the runs that are due, and records those
/// due for longer than the grace period as missed. Safe to run from several
/// workers at once: a campaign has at most one run per period, by a unique key.
pub async fn tick(
    store: &dyn Store,
    settings: &ScheduleSettings,
    now: i64,
) -> StoreResult<Vec<Scheduled>> {
    let mut done = Vec::new();
    let candidates = store
        .campaigns_in(&[CampaignState::Scheduled, CampaignState::Running])
        .await?;
    for campaign in candidates {
        let eligible = match campaign.state {
            CampaignState::Scheduled => true,
            CampaignState::Running => campaign.recurrence.is_some(),
            _ => false,
        };
        if !eligible {
            continue;
        }
        let existing: Vec<String> = store
            .runs(campaign.id)
            .await?
            .into_iter()
            .map(|r| r.period)
            .collect();
        for (period, due) in due_periods(&campaign, settings.zone, now) {
            if existing.contains(&period) {
                continue;
            }
            if now - due > settings.grace_ms {
                if store
                    .record_missed_run(
                        campaign.id,
                        &period,
                        due,
                        Transition::Miss.from_states(),
                        now,
                    )
                    .await?
                {
                    tracing::warn!(
                        "campaign {} run {period} was due {} and nothing sent it in time: recorded as missed",
                        campaign.id,
                        DateTime::from_timestamp_millis(due).unwrap_or_default().with_timezone(&settings.zone)
                    );
                    done.push(Scheduled::Missed {
                        campaign: campaign.id,
                        period,
                    });
                }
                continue;
            }
            if let Some(guard) = &settings.budget {
                if let Err(refused) = guard.check(store, &campaign).await {
                    refuse_run(store, &campaign, &refused.to_string(), now).await?;
                    break;
                }
            }
            let run = crate::campaigns::start_run(store, &campaign, &period, now).await?;
            if run.created {
                tracing::info!(
                    "campaign {} run {period} started: {} messages",
                    campaign.id,
                    run.total
                );
                done.push(Scheduled::Started {
                    campaign: campaign.id,
                    period,
                    run,
                });
            }
        }
    }
    Ok(done)
}

/// A run the budget guard refused: the campaign pauses with the reason, for
/// staff to see in `campaign status`, instead of the scheduler retrying it
/// every second.
async fn refuse_run(
    store: &dyn Store,
    campaign: &Campaign,
    reason: &str,
    now: i64,
) -> StoreResult<()> {
    tracing::warn!("campaign {} not started: {reason}", campaign.id);
    store
        .set_campaign_state(
            campaign.id,
            Transition::Pause.from_states(),
            CampaignState::Paused,
            Some(reason),
            now,
        )
        .await?;
    Ok(())
}

/// The periods of a campaign that are due at `now`, with their due times:
/// `once` for a one-off, `YYYY-MM` for each month of a monthly one, from the
/// campaign's first due time to its end.
pub fn due_periods(c: &Campaign, zone: Tz, now: i64) -> Vec<(String, i64)> {
    match (c.recurrence, c.start_at) {
        (None, Some(at)) if at <= now => vec![("once".to_string(), at)],
        (None, _) => Vec::new(),
        (Some(monthly), _) => {
            let from = c.start_at.unwrap_or(c.created_at);
            let Some(first) = DateTime::from_timestamp_millis(from) else {
                return Vec::new();
            };
            let first = first.with_timezone(&zone);
            let (mut year, mut month) = (first.year(), first.month());
            let mut out = Vec::new();
            // Bounded: a campaign cannot have more than a century of months.
            for _ in 0..1200 {
                let Some(due) = monthly.due(year, month, zone).map(|d| d.timestamp_millis()) else {
                    break;
                };
                if due > now || c.recur_until.is_some_and(|until| due > until) {
                    break;
                }
                if due >= from {
                    out.push((period_key(year, month), due));
                }
                (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
            }
            out
        }
    }
}

/// The next time a campaign has a run due, if any.
pub fn next_due(c: &Campaign, zone: Tz, now: i64, taken: &[String]) -> Option<i64> {
    match c.recurrence {
        None => c.start_at.filter(|_| !taken.iter().any(|p| p == "once")),
        Some(monthly) => {
            let from =
                DateTime::from_timestamp_millis(c.start_at.unwrap_or(c.created_at).max(now))?
                    .with_timezone(&zone);
            let (mut year, mut month) = (from.year(), from.month());
            for _ in 0..24 {
                let due = monthly.due(year, month, zone)?.timestamp_millis();
                if c.recur_until.is_some_and(|until| due > until) {
                    return None;
                }
                if due >= now && !taken.contains(&period_key(year, month)) {
                    return Some(due);
                }
                (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
            }
            None
        }
    }
}
