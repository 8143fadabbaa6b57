//! The rules of activities and campaigns: what creation checks before anything
//! can be sent, and which state changes are allowed.

use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use super::{
    Activity, ActivitySplit, Campaign, CampaignSchedule, CampaignState, CampaignVars, NewActivity,
    NewCampaign, RunStart, RunState, StatusCounts, Transition,
};
use crate::contacts::Segment;
use crate::domain::{ChannelKind, ContactKind};
use crate::schedule::{Expiry, Window};
use crate::store::{CampaignCounts, Store, StoreError, WindowWait};
use crate::templates::{Attachment, LangMode, Recipient, Renderer};

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{0}")]
    Invalid(String),
    #[error("activity {0:?} does not exist (create it with `aviso activity create`)")]
    NoActivity(String),
    #[error("list {0:?} does not exist (import contacts into it with `aviso contacts import FILE --list {0}`)")]
    NoList(String),
    #[error("campaign {0} does not exist")]
    NoCampaign(i64),
    #[error("campaign {id} is {state}: {hint}")]
    WrongState {
        id: i64,
        state: CampaignState,
        hint: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many audience members creation renders the template for.
const SAMPLE_RENDERS: i64 = 200;

pub async fn create_activity(
    store: &dyn Store,
    activity: NewActivity,
    now: i64,
) -> Result<i64, CampaignError> {
    let code_ok = !activity.code.is_empty()
        && activity
            .code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !code_ok {
        return Err(CampaignError::Invalid(format!(
            "activity code {:?}: use letters, digits, - and _ (e.g. SMS-REG)",
            activity.code
        )));
    }
    if activity.name.trim().is_empty() {
        return Err(CampaignError::Invalid("activity name is empty".into()));
    }
    if activity.programmed < 0 {
        return Err(CampaignError::Invalid(
            "programmed total cannot be negative".into(),
        ));
    }
    let date = |d: &Option<String>,
                what: &str|
     -> Result<Option<chrono::NaiveDate>, CampaignError> {
        d.as_deref()
            .map(|d| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                    CampaignError::Invalid(format!("{what} {d:?} is not a date like 2021-09-01"))
                })
            })
            .transpose()
    };
    let (from, to) = (
        date(&activity.period_from, "--from")?,
        date(&activity.period_to, "--to")?,
    );
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(CampaignError::Invalid(format!(
                "--from {from} is after --to {to}"
            )));
        }
    }
    if activity.split == ActivitySplit::Monthly && (from.is_none() || to.is_none()) {
        return Err(CampaignError::Invalid(
            "a monthly split needs the activity's period: give --from and --to".into(),
        ));
    }
    Ok(store.create_activity(&activity, now).await?)
}

/// What staff ask for with `aviso campaign create`.
#[derive(Debug, Clone, Default)]
pub struct CampaignRequest {
    pub activity: String,
    pub template: String,
    pub channel: Option<ChannelKind>,
    pub list: String,
    pub segment: String,
    pub lang: Option<LangMode>,
    pub name: Option<String>,
    pub vars: CampaignVars,
    pub attachments: Vec<std::path::PathBuf>,
    pub attachment_limit: u64,
    pub provider: Option<String>,
    pub schedule: CampaignSchedule,
    /// Send only inside this window of each recipient's local time.
    pub window: Option<Window>,
    pub expires: Option<Expiry>,
    /// At most so many messages per period to one recipient, across campaigns.
    pub frequency_cap: Option<crate::domain::CapPolicy>,
    /// Refuse runs whose estimate costs more (see `crate::cost`).
    pub budget: Option<crate::cost::Money>,
}

/// Creates a campaign after checking everything that can be checked: the
/// activity, list, segment, template and its variables, attachments, and a
/// render for a sample of the real audience. Nothing is queued yet.
pub async fn create_campaign(
    store: &dyn Store,
    renderer: &Renderer,
    request: CampaignRequest,
    now: i64,
) -> Result<i64, CampaignError> {
    let invalid = CampaignError::Invalid;
    let activity: Activity = store
        .activity(&request.activity)
        .await?
        .ok_or_else(|| CampaignError::NoActivity(request.activity.clone()))?;
    let template = renderer
        .template(&request.template)
        .map_err(|e| invalid(e.to_string()))?;
    let channel = match (request.channel, activity.channel) {
        (Some(c), Some(a)) if c != a => {
            return Err(invalid(format!(
                "activity {} is for {a}, not {c}",
                activity.code
            )))
        }
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => match template.meta.channels.as_slice() {
            [only] => *only,
            _ => {
                return Err(invalid(
                    "say which channel: --channel sms or --channel email".into(),
                ))
            }
        },
    };
    if !template.meta.channels.contains(&channel) {
        return Err(invalid(format!(
            "template {} has no {channel} version",
            template.name
        )));
    }
    let list_id = store
        .list_id(&request.list)
        .await?
        .ok_or_else(|| CampaignError::NoList(request.list.clone()))?;
    let segment = Segment::parse(&request.segment).map_err(|e| invalid(e.to_string()))?;
    let lang = request.lang.unwrap_or(template.meta.default_lang);
    let vars = Value::Object(request.vars.clone());
    renderer
        .check_vars(&template.name, &vars)
        .map_err(|e| invalid(e.to_string()))?;
    if !request.attachments.is_empty() && channel == ChannelKind::Sms {
        return Err(invalid(
            "SMS cannot carry attachments; send links instead".into(),
        ));
    }
    let mut attachments = Vec::new();
    for path in &request.attachments {
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        attachments.push(Attachment::from_path(&absolute).map_err(|e| invalid(e.to_string()))?);
    }
    Attachment::check_total(&attachments, request.attachment_limit)
        .map_err(|e| invalid(e.to_string()))?;

    // Every SMS is rendered now (a long name can push one over max_segments,
    // and an SMS that long is refused before it is queued); e-mails, whose
    // length does not matter, for the sample with the longest names.
    let check = |contact: &crate::contacts::Contact| -> Result<(), CampaignError> {
        if template.meta.audience == Some(ContactKind::Organization)
            && contact.kind != ContactKind::Organization
        {
            return Err(invalid(format!(
                "template {} is written for organisations, but contact {} is a citizen (use --segment kind=organization)",
                template.name, contact.id
            )));
        }
        let recipient = Recipient::from_contact(contact);
        let rendered = match channel {
            ChannelKind::Sms => renderer
                .render_sms(&template.name, lang, &recipient, &vars)
                .map(|_| ()),
            ChannelKind::Email => renderer
                .render_email(
                    &template.name,
                    lang,
                    &recipient,
                    &vars,
                    "https://example.invalid/u/CHECK",
                )
                .map(|_| ()),
        };
        rendered.map_err(|e| invalid(format!("for contact {}: {e}", contact.id)))
    };
    let mut checked = 0;
    match channel {
        ChannelKind::Email => {
            for contact in store
                .sample_contacts(list_id, &segment, channel, SAMPLE_RENDERS)
                .await?
            {
                check(&contact)?;
                checked += 1;
            }
        }
        ChannelKind::Sms => {
            let mut after = String::new();
            loop {
                let page = store
                    .audience_page(list_id, &segment, channel, &after, 2000)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.id.clone();
                for contact in &page {
                    check(contact)?;
                }
                checked += page.len();
            }
        }
    }
    if checked == 0 {
        tracing::warn!(
            "list {:?} has nobody with an {channel} address matching '{segment}': the campaign would send nothing",
            request.list
        );
    }

    if let Some(at) = request.schedule.start_at {
        if at < now - 60_000 {
            return Err(invalid("--at is in the past: give a time to come".into()));
        }
    }
    if let Some(Expiry::At(at)) = request.expires {
        if at <= request.schedule.start_at.unwrap_or(now) {
            return Err(invalid(
                "--expires is before the campaign would start".into(),
            ));
        }
    }
    let scheduled = request.schedule.start_at.is_some() || request.schedule.recurrence.is_some();
    let name = request
        .name
        .unwrap_or_else(|| format!("{} → {}", template.name, request.list));
    let campaign = NewCampaign {
        activity_id: activity.id,
        name,
        template: template.name.clone(),
        channel,
        list_id,
        segment,
        lang_mode: lang,
        provider: request.provider,
        vars: request.vars,
        attachments,
        state: if scheduled {
            CampaignState::Scheduled
        } else {
            CampaignState::Draft
        },
        start_at: request.schedule.start_at,
        recurrence: request.schedule.recurrence,
        recur_until: request.schedule.recur_until,
        window: request.window,
        expires_at: match request.expires {
            Some(Expiry::At(at)) => Some(at),
            _ => None,
        },
        expires_after: match request.expires {
            Some(Expiry::After(ms)) => Some(ms),
            _ => None,
        },
        frequency_cap: request.frequency_cap,
        budget_micros: request.budget.map(|b| b.micros()),
    };
    Ok(store.create_campaign(&campaign, now).await?)
}

async fn load(store: &dyn Store, id: i64) -> Result<Campaign, CampaignError> {
    store
        .campaign(id)
        .await?
        .ok_or(CampaignError::NoCampaign(id))
}

/// Freezes the audience into the outbox now. Starting a campaign that already
/// ran queues nothing: the run for its period exists. A monthly campaign starts
/// the current month's run (in `zone`).
pub async fn start(
    store: &dyn Store,
    id: i64,
    zone: Tz,
    now: i64,
) -> Result<RunStart, CampaignError> {
    let campaign = load(store, id).await?;
    match campaign.state {
        CampaignState::Paused => {
            return Err(CampaignError::WrongState {
                id,
                state: campaign.state,
                hint: "continue it with `aviso campaign resume`",
            })
        }
        CampaignState::Cancelled => {
            return Err(CampaignError::WrongState {
                id,
                state: campaign.state,
                hint: "a cancelled campaign cannot be started again; create a new one",
            })
        }
        _ => {}
    }
    let period = super::period_at(&campaign, zone, now);
    Ok(super::start_run(store, &campaign, &period, now).await?)
}

/// Changes when a campaign runs (`campaign reschedule`).
pub async fn reschedule(
    store: &dyn Store,
    id: i64,
    schedule: &CampaignSchedule,
    now: i64,
) -> Result<(), CampaignError> {
    let campaign = load(store, id).await?;
    if schedule.start_at.is_some_and(|at| at < now - 60_000) {
        return Err(CampaignError::Invalid(
            "--at is in the past: give a time to come".into(),
        ));
    }
    if !store
        .update_schedule(id, schedule, Transition::Reschedule.from_states(), now)
        .await?
    {
        return Err(CampaignError::WrongState {
            id,
            state: campaign.state,
            hint: "only a campaign that is not running, paused or cancelled can be rescheduled",
        });
    }
    Ok(())
}

/// `campaign retry`: what failed for reasons that were not permanent (attempts
/// exhausted during an outage) goes out again; permanent failures and
/// suppressed addresses never do.
pub async fn retry(store: &dyn Store, id: i64, now: i64) -> Result<u64, CampaignError> {
    load(store, id).await?;
    Ok(store
        .retry_failed(id, Transition::Retry.from_states(), now)
        .await?)
}

pub async fn pause(
    store: &dyn Store,
    id: i64,
    reason: &str,
    now: i64,
) -> Result<(), CampaignError> {
    let campaign = load(store, id).await?;
    let from = Transition::Pause.from_states();
    if !store
        .set_campaign_state(id, from, CampaignState::Paused, Some(reason), now)
        .await?
    {
        return Err(CampaignError::WrongState {
            id,
            state: campaign.state,
            hint: "only a running or scheduled campaign can be paused",
        });
    }
    Ok(())
}

/// Pauses every running or scheduled campaign (an operator stopping all
/// sending at once, e.g. a wrong text noticed mid-send); returns their ids.
pub async fn pause_all(
    store: &dyn Store,
    reason: &str,
    now: i64,
) -> Result<Vec<i64>, CampaignError> {
    let from = Transition::Pause.from_states();
    let mut paused = Vec::new();
    for campaign in store.campaigns_in(from).await? {
        // A campaign that finished meanwhile is simply not paused.
        if store
            .set_campaign_state(campaign.id, from, CampaignState::Paused, Some(reason), now)
            .await?
        {
            paused.push(campaign.id);
        }
    }
    Ok(paused)
}

pub async fn resume(store: &dyn Store, id: i64, now: i64) -> Result<(), CampaignError> {
    let campaign = load(store, id).await?;
    let never_ran = store.runs(id).await?.is_empty();
    let next = if never_ran && campaign.recurrence.is_none() {
        // A one-off paused before its time keeps its time.
        if campaign.start_at.is_some() {
            CampaignState::Scheduled
        } else {
            CampaignState::Draft
        }
    } else {
        CampaignState::Running
    };
    if !store
        .set_campaign_state(id, Transition::Resume.from_states(), next, None, now)
        .await?
    {
        return Err(CampaignError::WrongState {
            id,
            state: campaign.state,
            hint: "only a paused campaign can be resumed",
        });
    }
    Ok(())
}

/// Cancels a campaign: nothing more is sent; what is in flight finishes.
pub async fn cancel(store: &dyn Store, id: i64, now: i64) -> Result<u64, CampaignError> {
    let campaign = load(store, id).await?;
    if !store
        .set_campaign_state(
            id,
            Transition::Cancel.from_states(),
            CampaignState::Cancelled,
            None,
            now,
        )
        .await?
    {
        return Err(CampaignError::WrongState {
            id,
            state: campaign.state,
            hint: "it is already finished",
        });
    }
    Ok(store.cancel_pending(id, now).await?)
}

/// `campaign status --json`: counts that always add up to `total`.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignStatus {
    pub id: i64,
    pub name: String,
    pub activity: String,
    pub channel: ChannelKind,
    pub template: String,
    pub state: CampaignState,
    pub pause_reason: Option<String>,
    pub total: i64,
    pub counts: StatusCounts,
    pub no_address: i64,
    pub runs: i64,
    /// Messages waiting for their recipients' send window to open.
    pub waiting_for_window: i64,
    /// When the next of them may go (RFC 3339).
    pub next_window_opens: Option<String>,
    /// When the next run is due (RFC 3339), for scheduled campaigns.
    pub next_run: Option<String>,
    pub last_run: Option<LastRun>,
    /// Providers currently slowed down at their own request.
    pub slowed_providers: Vec<crate::store::ProviderState>,
    /// At most so many messages per period to one recipient, e.g. "1/1d".
    pub frequency_cap: Option<String>,
    /// `hold` or `defer`: what happens to messages over the cap.
    pub when_capped: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub period: String,
    pub state: RunState,
    pub total: i64,
}

fn rfc3339(ms: i64, zone: Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&zone)
        .to_rfc3339()
}

pub async fn status(
    store: &dyn Store,
    campaign: &Campaign,
    zone: Tz,
    now: i64,
) -> Result<CampaignStatus, CampaignError> {
    let CampaignCounts {
        messages: counts,
        no_address,
    } = store.status_counts(campaign.id).await?;
    let runs = store.runs(campaign.id).await?;
    let WindowWait {
        waiting,
        next_opens: opens,
    } = store.waiting_for_window(campaign.id, now).await?;
    let periods: Vec<String> = runs.iter().map(|r| r.period.clone()).collect();
    let next_run = match campaign.state {
        CampaignState::Scheduled | CampaignState::Running => {
            crate::schedule::next_due(campaign, zone, now, &periods).map(|ms| rfc3339(ms, zone))
        }
        _ => None,
    };
    let slowed_providers = store
        .provider_states()
        .await?
        .into_iter()
        .filter(|p| p.rate != p.base_rate && now - p.updated_at < 60_000)
        .collect();
    let cap = store.frequency_cap(campaign.id).await?;
    Ok(CampaignStatus {
        id: campaign.id,
        name: campaign.name.clone(),
        activity: campaign.activity_code.clone(),
        channel: campaign.channel,
        template: campaign.template.clone(),
        state: campaign.state,
        pause_reason: campaign.pause_reason.clone(),
        total: counts.total(),
        counts,
        no_address,
        runs: runs.len() as i64,
        waiting_for_window: waiting,
        next_window_opens: opens.map(|ms| rfc3339(ms, zone)),
        next_run,
        last_run: runs.last().map(|r| LastRun {
            period: r.period.clone(),
            state: r.state,
            total: r.total,
        }),
        slowed_providers,
        frequency_cap: cap.map(|p| p.cap.to_string()),
        when_capped: cap.map(|p| p.when.to_string()),
    })
}

pub async fn status_of(
    store: &dyn Store,
    id: i64,
    zone: Tz,
    now: i64,
) -> Result<CampaignStatus, CampaignError> {
    let campaign = load(store, id).await?;
    status(store, &campaign, zone, now).await
}
