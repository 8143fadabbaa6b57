//! Activities, campaigns and runs: what the work programme asks for, what staff
//! schedule, and what each start froze into the outbox.

pub mod manage;
mod outbox;
mod run;
mod state;

use serde::Serialize;

use crate::contacts::Segment;
use crate::domain::{vocabulary, ChannelKind};
use crate::schedule::{Monthly, Window};
use crate::templates::{Attachment, LangMode};

pub use outbox::{
    ClaimedMessage, NewReceipt, Outcome, OutcomeKind, ReceiptEffect, ReceiptOutcome, ReceiptTarget,
    RecordReport,
};
pub use run::{period_at, start_run};
pub use state::{CampaignState, Transition};

/// A campaign's variables (`{{vars.NAME}}` in its template), by name.
pub type CampaignVars = serde_json::Map<String, serde_json::Value>;

vocabulary!(
    /// One run of a campaign (a one-off send, or one period of a recurring one).
    RunState {
        Running => "running",
        Completed => "completed",
        Missed => "missed",
        Cancelled => "cancelled",
    }
);

vocabulary!(
    /// Where a message stands. Every message is in exactly one of these.
    /// `capped`: held for good, sending it would have exceeded its
    /// campaign's frequency cap.
    MessageStatus {
        Queued => "queued",
        Sending => "sending",
        Sent => "sent",
        Delivered => "delivered",
        Retrying => "retrying",
        Failed => "failed",
        Suppressed => "suppressed",
        Expired => "expired",
        Cancelled => "cancelled",
        Capped => "capped",
    }
);

vocabulary!(
    /// How an activity's programmed total spreads over its period in
    /// reports: one total for the whole period (`none`), or evenly over its
    /// months (`monthly`).
    ActivitySplit {
        Whole => "none",
        Monthly => "monthly",
    }
);

/// A line of the work programme with its programmed total, as the store
/// decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub id: i64,
    pub code: String,
    pub name: String,
    /// What aviso sends for it; none for counted work (calls, events).
    pub channel: Option<ChannelKind>,
    pub programmed: i64,
    pub period_from: Option<String>,
    pub period_to: Option<String>,
    pub split: ActivitySplit,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivity {
    pub code: String,
    pub name: String,
    pub channel: Option<ChannelKind>,
    pub programmed: i64,
    pub period_from: Option<String>,
    pub period_to: Option<String>,
    pub split: ActivitySplit,
}

/// A campaign as stored, with the names of its activity and list. The store
/// decodes every field: a value it cannot read is an error there, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: i64,
    pub activity_id: i64,
    pub activity_code: String,
    pub name: String,
    pub template: String,
    pub channel: ChannelKind,
    pub list_id: i64,
    pub list_name: String,
    pub segment: Segment,
    pub lang_mode: LangMode,
    pub provider: Option<String>,
    pub vars: CampaignVars,
    pub attachments: Vec<Attachment>,
    pub state: CampaignState,
    pub pause_reason: Option<String>,
    pub start_at: Option<i64>,
    /// Monthly runs; `None`: one run at `start_at`.
    pub recurrence: Option<Monthly>,
    pub recur_until: Option<i64>,
    /// Send only inside this window of each recipient's local time.
    pub window: Option<Window>,
    pub expires_at: Option<i64>,
    pub expires_after: Option<i64>,
    /// The campaign's own budget in millionths of the price currency.
    pub budget_micros: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCampaign {
    pub activity_id: i64,
    pub name: String,
    pub template: String,
    pub channel: ChannelKind,
    pub list_id: i64,
    pub segment: Segment,
    pub lang_mode: LangMode,
    pub provider: Option<String>,
    pub vars: CampaignVars,
    pub attachments: Vec<Attachment>,
    pub state: CampaignState,
    pub start_at: Option<i64>,
    pub recurrence: Option<Monthly>,
    pub recur_until: Option<i64>,
    pub window: Option<Window>,
    pub expires_at: Option<i64>,
    pub expires_after: Option<i64>,
    /// Its frequency cap, if any (kept in `campaign_caps`).
    pub frequency_cap: Option<crate::domain::CapPolicy>,
    /// Millionths of the price currency; `None`: the budget of aviso.toml, if any.
    pub budget_micros: Option<i64>,
}

/// When a campaign runs: once at `start_at`, or monthly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CampaignSchedule {
    pub start_at: Option<i64>,
    pub recurrence: Option<Monthly>,
    pub recur_until: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Run {
    pub id: i64,
    pub campaign_id: i64,
    pub period: String,
    #[sqlx(try_from = "String")]
    pub state: RunState,
    pub scheduled_for: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub total: i64,
    pub no_address: i64,
}

/// What starting a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunStart {
    pub run_id: i64,
    /// False when the run already existed: nothing new was queued.
    pub created: bool,
    pub total: i64,
    pub suppressed: i64,
    pub no_address: i64,
}

/// Message counts of a campaign by status; they always add up to `total`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub retrying: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub expired: i64,
    pub cancelled: i64,
    /// Held by the frequency cap: never sent.
    pub capped: i64,
}

impl StatusCounts {
    pub fn add(&mut self, status: MessageStatus, n: i64) {
        let slot = match status {
            MessageStatus::Queued => &mut self.queued,
            MessageStatus::Sending => &mut self.sending,
            MessageStatus::Sent => &mut self.sent,
            MessageStatus::Delivered => &mut self.delivered,
            MessageStatus::Retrying => &mut self.retrying,
            MessageStatus::Failed => &mut self.failed,
            MessageStatus::Suppressed => &mut self.suppressed,
            MessageStatus::Expired => &mut self.expired,
            MessageStatus::Cancelled => &mut self.cancelled,
            MessageStatus::Capped => &mut self.capped,
        };
        *slot += n;
    }

    pub fn total(&self) -> i64 {
        self.queued
            + self.sending
            + self.sent
            + self.delivered
            + self.retrying
            + self.failed
            + self.suppressed
            + self.expired
            + self.cancelled
            + self.capped
    }

    pub fn pending(&self) -> i64 {
        self.queued + self.sending + self.retrying
    }
}
