//! Campaigns as the database keeps them (text columns) and as the program
//! uses them (typed): a row is decoded once, here, and a value that does not
//! read is `StoreError::Corrupt` naming the campaign and the column, never a
//! default or a silent skip.

use chrono::NaiveTime;

use crate::campaigns::{Campaign, CampaignState, CampaignVars, NewCampaign};
use crate::contacts::Segment;
use crate::domain::ChannelKind;
use crate::schedule::{Monthly, Window};
use crate::store::{StoreError, StoreResult};
use crate::templates::{Attachment, LangMode};

/// The `recurrence` column of a monthly campaign (the only recurrence there is).
const MONTHLY: &str = "month";
/// What a monthly campaign without a day or time runs on.
const DEFAULT_DAY: i64 = 1;
const DEFAULT_TIME: &str = "10:00";

/// A row of `CAMPAIGN_SELECT`, undecoded.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CampaignRow {
    id: i64,
    activity_id: i64,
    activity_code: String,
    name: String,
    template: String,
    channel: String,
    list_id: i64,
    list_name: String,
    segment: String,
    lang_mode: String,
    provider: Option<String>,
    vars: String,
    attachments: String,
    state: String,
    pause_reason: Option<String>,
    start_at: Option<i64>,
    recurrence: Option<String>,
    recur_day: Option<i64>,
    recur_time: Option<String>,
    recur_until: Option<i64>,
    window_start: Option<String>,
    window_end: Option<String>,
    expires_at: Option<i64>,
    expires_after: Option<i64>,
    budget_micros: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl CampaignRow {
    /// The typed campaign, or `Corrupt` naming the first column that does not read.
    pub(super) fn decode(self) -> StoreResult<Campaign> {
        let id = self.id;
        let corrupt = |field: &str, reason: String| {
            StoreError::Corrupt(format!("campaign {id}, {field}: {reason}"))
        };
        let unknown = |field: &str, raw: &str| corrupt(field, format!("unknown value {raw:?}"));
        let channel =
            ChannelKind::parse(&self.channel).map_err(|_| unknown("channel", &self.channel))?;
        let state = CampaignState::parse(&self.state).map_err(|_| unknown("state", &self.state))?;
        let lang_mode =
            LangMode::parse(&self.lang_mode).map_err(|_| unknown("lang_mode", &self.lang_mode))?;
        let segment =
            Segment::parse(&self.segment).map_err(|e| corrupt("segment", e.to_string()))?;
        let vars: CampaignVars = serde_json::from_str(&self.vars)
            .map_err(|e| corrupt("vars", format!("not a JSON object of variables: {e}")))?;
        let attachments: Vec<Attachment> =
            serde_json::from_str(&self.attachments).map_err(|e| {
                corrupt(
                    "attachments",
                    format!("not a JSON list of attachments: {e}"),
                )
            })?;
        let recurrence = match self.recurrence.as_deref() {
            None => None,
            Some(MONTHLY) => {
                let day = self.recur_day.unwrap_or(DEFAULT_DAY);
                let time = self.recur_time.as_deref().unwrap_or(DEFAULT_TIME);
                Some(
                    Monthly::new(u32::try_from(day).unwrap_or(0), time)
                        .map_err(|e| corrupt("recurrence", e.0))?,
                )
            }
            Some(other) => return Err(unknown("recurrence", other)),
        };
        let window = match (self.window_start, self.window_end) {
            (None, None) => None,
            (Some(start), Some(end)) => {
                Some(Window::parse(&format!("{start}-{end}")).map_err(|e| corrupt("window", e.0))?)
            }
            (start, end) => {
                return Err(corrupt(
                    "window",
                    format!("a window needs a start and an end, found {start:?} and {end:?}"),
                ))
            }
        };
        Ok(Campaign {
            id,
            activity_id: self.activity_id,
            activity_code: self.activity_code,
            name: self.name,
            template: self.template,
            channel,
            list_id: self.list_id,
            list_name: self.list_name,
            segment,
            lang_mode,
            provider: self.provider,
            vars,
            attachments,
            state,
            pause_reason: self.pause_reason,
            start_at: self.start_at,
            recurrence,
            recur_until: self.recur_until,
            window,
            expires_at: self.expires_at,
            expires_after: self.expires_after,
            budget_micros: self.budget_micros,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Decodes every row, failing on the first that does not read.
pub(super) fn decode_all(rows: Vec<CampaignRow>) -> StoreResult<Vec<Campaign>> {
    rows.into_iter().map(CampaignRow::decode).collect()
}

/// The text columns of a new campaign, as `create_campaign` binds them.
pub(super) struct CampaignColumns {
    pub channel: &'static str,
    pub segment: String,
    pub lang_mode: &'static str,
    pub vars: String,
    pub attachments: String,
    pub state: &'static str,
    pub recurrence: RecurrenceColumns,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
}

impl CampaignColumns {
    pub(super) fn of(c: &NewCampaign) -> CampaignColumns {
        CampaignColumns {
            channel: c.channel.code(),
            segment: c.segment.to_string(),
            lang_mode: c.lang_mode.code(),
            vars: serde_json::Value::Object(c.vars.clone()).to_string(),
            // A list of plain structs always serialises.
            attachments: serde_json::to_string(&c.attachments).unwrap_or_else(|_| "[]".into()),
            state: c.state.code(),
            recurrence: RecurrenceColumns::of(c.recurrence.as_ref()),
            window_start: c.window.map(|w| hhmm(w.start)),
            window_end: c.window.map(|w| hhmm(w.end)),
        }
    }
}

/// The `recurrence`, `recur_day` and `recur_time` columns.
pub(super) struct RecurrenceColumns {
    pub recurrence: Option<&'static str>,
    pub day: Option<i64>,
    pub time: Option<String>,
}

impl RecurrenceColumns {
    pub(super) fn of(monthly: Option<&Monthly>) -> RecurrenceColumns {
        RecurrenceColumns {
            recurrence: monthly.map(|_| MONTHLY),
            day: monthly.map(|m| i64::from(m.day)),
            time: monthly.map(|m| hhmm(m.time)),
        }
    }
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// `$first, $first+1, …`: the placeholders of an `IN` list of `n` binds.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
