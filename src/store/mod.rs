//! Storage: one [`Store`] interface, two backends. SQLite is the embedded
//! default (a file, nothing to install); PostgreSQL lets several workers on
//! several hosts share one outbox. The SQL both understand is written once, by
//! area, in `sql/`; how each is opened lives in its own file.

pub mod backup;
mod cap;
pub mod copy;
mod fleet;
mod open;
mod postgres;
mod rows;
mod sql;
mod sqlite;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::Serialize;

use crate::calls::CallAttempt;
use crate::campaigns::{
    Activity, Campaign, CampaignSchedule, CampaignState, ClaimedMessage, MessageStatus,
    NewActivity, NewCampaign, NewReceipt, Outcome, ReceiptOutcome, ReceiptTarget, RecordReport,
    Run, RunStart,
};
use crate::contacts::{Contact, ContactRecord, Segment};
use crate::domain::{CapPolicy, ChannelKind};
use crate::domain::{SuppressionReason, SuppressionScope};
use crate::replies::{AppliedReply, InboundRecord, NewInbound, ReplyStatus};

pub use cap::CappedClaim;
pub use fleet::{
    PaceGrant, PaceSignal, WorkerHealth, WorkerInfo, WorkerRow, LOST_WORKERS_KEPT_MS, PACE_FLOOR,
    PACE_RECOVERY, PACE_STEP_MS, SLOWED_REASON,
};
pub use open::open;
pub use rows::{
    ActivityRecord, ActivityTarget, CampaignCounts, PhoneHolder, RecentFailures, SlowDown,
    WindowWait,
};
pub use sql::SqlStore;

/// Statements slower than this are logged at debug level only: freezing a
/// million-recipient audience or importing 10,000 rows takes seconds by design,
/// and sqlx's default (a warning at 1 s) would alarm operators for nothing.
const SLOW_STATEMENT: std::time::Duration = std::time::Duration::from_secs(1);

/// Outcomes not yet committed, at most: waiting, plus those in the
/// transaction under way. Senders wait beyond this, so a slow database slows
/// sending instead of widening the window of re-sends after a crash. The
/// store is built for it: a batch is recorded in one statement, and a claim of
/// a batch is buffered whole.
pub const RECORD_BATCH: usize = 256;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot prepare the database {url}: {detail}")]
    Prepare { url: String, detail: String },
    #[error(
        "the database URL {0:?} is not understood: use sqlite://FILE or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl(String),
    #[error("could not update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("the database holds a value aviso cannot read: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
}

/// Contacts in a list or segment, broken down the ways campaign staff ask about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContactCounts {
    pub total: i64,
    pub by_entity: BTreeMap<String, i64>,
    pub by_channel: ChannelCounts,
    pub by_language: BTreeMap<String, i64>,
    pub by_kind: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounts {
    pub sms: i64,
    pub email: i64,
}

/// Messages counted for the indicators, by every dimension they group by.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageFact {
    pub activity_id: i64,
    #[sqlx(try_from = "String")]
    pub channel: ChannelKind,
    pub entity: Option<String>,
    pub country: Option<String>,
    pub language: String,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    /// Quarter hours since the epoch of the message's last event (sent, or
    /// finished): every zone's offset is a whole number of quarter hours, so
    /// each bucket falls in one local month wherever the report is read.
    pub quarter: i64,
    pub count: i64,
    /// Of `count`, the messages a gateway accepted (what an e-mail price bills).
    pub accepted: i64,
    /// The SMS segments gateways accepted for them (what an SMS price bills).
    pub segments: i64,
}

/// One message in the ledger export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LedgerRow {
    pub message_id: i64,
    pub run_id: i64,
    pub campaign: String,
    pub contact_id: String,
    #[sqlx(try_from = "String")]
    pub channel: ChannelKind,
    pub address: String,
    pub entity: Option<String>,
    pub country: Option<String>,
    pub language: String,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    pub attempts: i64,
    /// SMS segments the gateway accepted; none for e-mail and unsent messages.
    pub segments: Option<i64>,
    pub last_code: Option<String>,
    pub last_reason: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A message that reached nobody, and who it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreached {
    pub contact: Contact,
    /// `Failed` or `Suppressed`.
    pub status: MessageStatus,
    /// The provider's reason, or the suppression's.
    pub reason: Option<String>,
}

/// A provider's pace as last reported by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ProviderState {
    pub name: String,
    /// Messages per second in force; 0 means unlimited.
    pub rate: f64,
    /// The configured rate; 0 means unlimited.
    pub base_rate: f64,
    pub reason: Option<String>,
    pub updated_at: i64,
}

/// The upper bounds (ms) of the send-latency histogram buckets. The
/// `attempt_totals` table counts attempts by these (migration 0004): changing
/// them needs a migration that recounts it.
pub const LATENCY_BUCKETS_MS: [i64; 8] = [10, 50, 100, 250, 500, 1000, 5000, 30000];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// (channel, status, count)
    pub messages: Vec<(String, String, i64)>,
    /// (provider, outcome, count)
    pub attempts: Vec<(String, String, i64)>,
    pub latency: Vec<LatencyRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyRow {
    pub provider: String,
    /// Cumulative counts, one per bucket of `LATENCY_BUCKETS_MS`.
    pub buckets: Vec<i64>,
    pub count: i64,
    pub sum_ms: i64,
}

/// An address that must never be messaged again on `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub address: String,
    pub scope: SuppressionScope,
    pub reason: SuppressionReason,
    pub source: String,
    pub created_at: i64,
}

/// Everything aviso keeps, one sub-trait per area; [`SqlStore`] implements
/// them all for SQLite and PostgreSQL. A `dyn Store` (or `S: Store`) offers
/// every area's methods without importing the sub-traits.
pub trait Store:
    ContactStore
    + SuppressionStore
    + SettingStore
    + ActivityStore
    + CampaignStore
    + RunStore
    + OutboxStore
    + ReceiptStore
    + ReportStore
    + FleetStore
    + ReplyStore
{
    /// `sqlite` or `postgres`, for messages and tests.
    fn backend(&self) -> &'static str;
}

/// Lists and contacts: what imports write and audiences read.
#[async_trait]
pub trait ContactStore: Send + Sync {
    async fn ensure_list(&self, name: &str, now: i64) -> StoreResult<i64>;
    async fn list_id(&self, name: &str) -> StoreResult<Option<i64>>;
    /// Whether any contact is stored at all.
    async fn has_contacts(&self) -> StoreResult<bool>;
    /// Content hashes of those of `ids` already stored.
    async fn contact_hashes(&self, ids: &[String]) -> StoreResult<HashMap<String, String>>;
    /// Inserts or updates `changed` and adds `members` (ids) to the list, in one transaction.
    async fn save_contacts(
        &self,
        list_id: i64,
        changed: &[Contact],
        members: &[String],
        now: i64,
    ) -> StoreResult<()>;
    /// Like `save_contacts` for contacts not stored yet (an import into an
    /// empty database): plain inserts, cheaper than upserts; a contact already
    /// stored fails the whole call and changes nothing.
    async fn insert_new_contacts(
        &self,
        list_id: i64,
        new: &[Contact],
        members: &[String],
        now: i64,
    ) -> StoreResult<()>;
    async fn contact(&self, id: &str) -> StoreResult<Option<ContactRecord>>;
    async fn count_contacts(
        &self,
        list_id: Option<i64>,
        segment: &Segment,
    ) -> StoreResult<ContactCounts>;
    /// Up to `limit` contacts of a list and segment that have an address for
    /// `channel`, longest names first: the hardest cases for a template.
    async fn sample_contacts(
        &self,
        list_id: i64,
        segment: &Segment,
        channel: ChannelKind,
        limit: i64,
    ) -> StoreResult<Vec<Contact>>;
    /// The next `limit` audience members after contact id `after`, in id order:
    /// a whole audience, page by page.
    async fn audience_page(
        &self,
        list_id: i64,
        segment: &Segment,
        channel: ChannelKind,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<Contact>>;
    /// The next `limit` audience members after contact id `after` that have
    /// no address for `channel` (a run counts them, never messages them).
    async fn without_address_page(
        &self,
        list_id: i64,
        segment: &Segment,
        channel: ChannelKind,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<Contact>>;
    /// The messages of a campaign that reached nobody, with their contacts:
    /// failed (including bounces and failed delivery reports), or suppressed
    /// because the address was invalid or bounced before.
    async fn unreached_messages(&self, campaign_id: i64) -> StoreResult<Vec<Unreached>>;
    /// The (id, e-mail, phone) of every contact with this E.164 phone.
    async fn contacts_with_phone(&self, phone: &str) -> StoreResult<Vec<PhoneHolder>>;
}

/// Addresses never to be messaged again.
#[async_trait]
pub trait SuppressionStore: Send + Sync {
    /// Adds the suppressions not already present; returns how many were new.
    async fn add_suppressions(&self, items: &[Suppression]) -> StoreResult<u64>;
    async fn suppressions(&self, scope: Option<SuppressionScope>) -> StoreResult<Vec<Suppression>>;
}

/// Installation settings kept in the database.
#[async_trait]
pub trait SettingStore: Send + Sync {
    /// The value of `key`, storing `default` first if there is none yet.
    async fn setting_or_init(&self, key: &str, default: &str) -> StoreResult<String>;
}

/// Activities, their targets and the work recorded against them.
#[async_trait]
pub trait ActivityStore: Send + Sync {
    async fn create_activity(&self, activity: &NewActivity, now: i64) -> StoreResult<i64>;
    async fn activity(&self, code: &str) -> StoreResult<Option<Activity>>;
    async fn activities(&self) -> StoreResult<Vec<Activity>>;
    /// Per-entity programmed totals of an activity (replaces earlier ones).
    async fn set_activity_targets(
        &self,
        activity_id: i64,
        targets: &[(String, i64)],
    ) -> StoreResult<()>;
    /// (activity id, entity, programmed) of every activity with targets.
    async fn activity_targets(&self) -> StoreResult<Vec<ActivityTarget>>;
    /// Work done that aviso does not send itself (calls, workshops, events).
    async fn record_activity(
        &self,
        activity_id: i64,
        done: i64,
        date: &str,
        note: Option<&str>,
        now: i64,
    ) -> StoreResult<i64>;
    /// (activity id, done, date) of every record.
    async fn activity_records(&self) -> StoreResult<Vec<ActivityRecord>>;
    /// Records the call attempts not recorded before (same activity and key),
    /// and adds the new ones to the activity's records by day, in one
    /// transaction; returns how many were new.
    async fn record_call_attempts(
        &self,
        activity_id: i64,
        attempts: &[CallAttempt],
        source: &str,
        now: i64,
    ) -> StoreResult<u64>;
}

/// Campaigns: their definition, state and schedule.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    async fn create_campaign(&self, campaign: &NewCampaign, now: i64) -> StoreResult<i64>;
    async fn campaign(&self, id: i64) -> StoreResult<Option<Campaign>>;
    async fn campaigns(&self) -> StoreResult<Vec<Campaign>>;
    /// The campaigns in any of `states`, by id. Workers look at these several
    /// times a second, and must not read years of finished campaigns each time.
    async fn campaigns_in(&self, states: &[CampaignState]) -> StoreResult<Vec<Campaign>>;
    /// Moves a campaign to `to` if it is in one of `from`; false if it was not.
    async fn set_campaign_state(
        &self,
        id: i64,
        from: &[CampaignState],
        to: CampaignState,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Changes when a campaign in one of `from` runs; it becomes `scheduled`.
    /// False if it was in none of them.
    async fn update_schedule(
        &self,
        id: i64,
        schedule: &CampaignSchedule,
        from: &[CampaignState],
        now: i64,
    ) -> StoreResult<bool>;
    /// A campaign's frequency cap, if it has one.
    async fn frequency_cap(&self, campaign_id: i64) -> StoreResult<Option<CapPolicy>>;
}

/// Runs: a campaign's audience frozen into the outbox, and how it is going.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Freezes the campaign's audience (its list, segment and channel) into
    /// the outbox as run `period`, in one transaction, and moves the campaign
    /// to `running` if it is in one of `from`. Starting a period that already
    /// has a run queues nothing. Callers use [`crate::campaigns::start_run`].
    async fn start_run(
        &self,
        campaign: &Campaign,
        period: &str,
        expires_at: Option<i64>,
        from: &[CampaignState],
        now: i64,
    ) -> StoreResult<RunStart>;
    /// Records that period's run as missed (its time passed while nothing ran);
    /// false if the period already has a run. A one-off campaign in one of
    /// `from` becomes `missed`.
    async fn record_missed_run(
        &self,
        campaign_id: i64,
        period: &str,
        due: i64,
        from: &[CampaignState],
        now: i64,
    ) -> StoreResult<bool>;
    async fn runs(&self, campaign_id: i64) -> StoreResult<Vec<Run>>;
    /// Of the last `window` attempts of a campaign made at `since` or later:
    /// how many there were, how many failed for good, and the last failure's
    /// code and reason.
    async fn recent_failures(
        &self,
        campaign_id: i64,
        since: i64,
        window: i64,
    ) -> StoreResult<RecentFailures>;
    /// Queues again the messages that failed for reasons that were not
    /// permanent (attempts exhausted), as a new attempt series; if any, the
    /// campaign becomes `running` when it is in one of `from`.
    async fn retry_failed(
        &self,
        campaign_id: i64,
        from: &[CampaignState],
        now: i64,
    ) -> StoreResult<u64>;
    /// Messages waiting for their recipients' send window, and when the next opens.
    async fn waiting_for_window(&self, campaign_id: i64, now: i64) -> StoreResult<WindowWait>;
    /// Message counts by status, and contacts left out for having no address.
    async fn status_counts(&self, campaign_id: i64) -> StoreResult<CampaignCounts>;
    /// Cancels what has not been handed to a provider yet.
    async fn cancel_pending(&self, campaign_id: i64, now: i64) -> StoreResult<u64>;
}

/// The outbox: workers claim messages, record what happened, give them back.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Leases up to `limit` due messages of a running campaign to `worker`.
    async fn claim(
        &self,
        campaign_id: i64,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedMessage>>;
    /// `claim` for a campaign with a frequency cap: in the claim's transaction,
    /// each claimed message either takes a place under its recipient's cap
    /// (counted across campaigns) and is returned, or is held (`capped`) or
    /// deferred to when the cap leaves room, as the policy says.
    async fn claim_capped(
        &self,
        campaign_id: i64,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
        policy: &CapPolicy,
    ) -> StoreResult<CappedClaim>;
    /// Records outcomes in one transaction, each only if its lease still holds.
    async fn record_outcomes(
        &self,
        worker: &str,
        outcomes: &[Outcome],
        now: i64,
    ) -> StoreResult<RecordReport>;
    /// Extends the leases `worker` holds, while it is still working on them.
    async fn extend_leases(&self, worker: &str, until: i64) -> StoreResult<u64>;
    /// Returns claimed, unsent messages to the queue (graceful stop).
    async fn release(&self, worker: &str, ids: &[i64], now: i64) -> StoreResult<u64>;
    /// Housekeeping: expired leases back to the queue, cancelled campaigns'
    /// leftovers cancelled, finished runs and one-off campaigns completed,
    /// workers lost for longer than [`LOST_WORKERS_KEPT_MS`] forgotten.
    async fn housekeeping(&self, now: i64) -> StoreResult<()>;
}

/// Delivery reports and bounces.
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// The message a delivery report or bounce names.
    async fn receipt_target(&self, message_id: i64) -> StoreResult<Option<ReceiptTarget>>;
    /// Records a report once: a replay (same dedup key) changes nothing.
    async fn apply_receipt(&self, receipt: &NewReceipt, now: i64) -> StoreResult<ReceiptOutcome>;
}

/// What the indicators, the ledger and `/metrics` read.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Message counts grouped by everything the indicators group by, with the
    /// quarter hour (since the epoch) of each message's last event: sent, or finished.
    async fn message_facts(
        &self,
        from: Option<i64>,
        to: Option<i64>,
    ) -> StoreResult<Vec<MessageFact>>;
    /// Up to `limit` messages of a campaign with ids above `after_message_id`,
    /// by id, for the ledger export: read a page at a time, an export takes the
    /// same memory for any campaign, and lists each message once even while
    /// the campaign is sending.
    async fn message_ledger(
        &self,
        campaign_id: i64,
        statuses: &[String],
        after_message_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<LedgerRow>>;
    /// The campaign's first message id, where its ledger starts: the outbox
    /// before it holds only older campaigns.
    async fn first_message_id(&self, campaign_id: i64) -> StoreResult<Option<i64>>;
    /// Counters for `/metrics`.
    async fn metrics(&self) -> StoreResult<MetricsSnapshot>;
}

/// Workers as one sender: shared pace per provider, heartbeats.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// The pace a worker currently applies to a provider, for `campaign status`.
    async fn save_provider_state(&self, state: &ProviderState) -> StoreResult<()>;
    async fn provider_states(&self) -> StoreResult<Vec<ProviderState>>;
    /// Tells every worker that a provider without a shared rate asked one of
    /// them to slow down at `at` (wall-clock ms); a later report wins.
    async fn report_slow_down(&self, provider: &str, at: i64) -> StoreResult<()>;
    /// When each provider last asked any worker to slow down (ms; 0: never).
    async fn slow_downs(&self) -> StoreResult<Vec<SlowDown>>;
    /// Takes `slots` consecutive send slots from the pace every worker shares
    /// for the provider `name` (created at `ceiling` messages per second, which
    /// also follows a changed configuration), after applying `signal` to its
    /// rate: it halves or recovers at most once per [`PACE_STEP_MS`] for all
    /// workers together, and recovers only a step after the last refusal.
    /// `now` is wall-clock ms.
    async fn take_pace(
        &self,
        name: &str,
        ceiling: f64,
        slots: u32,
        signal: Option<PaceSignal>,
        now: f64,
    ) -> StoreResult<PaceGrant>;
    /// Records a worker that starts (or starts again under the same id).
    async fn register_worker(&self, worker: &WorkerInfo, now: i64) -> StoreResult<()>;
    /// The worker is alive at `now`; false if it is not registered (any more).
    async fn worker_heartbeat(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// A worker that stopped cleanly.
    async fn deregister_worker(&self, id: &str) -> StoreResult<()>;
    /// Every registered worker, by start time, with the messages each holds leased.
    async fn workers(&self) -> StoreResult<Vec<WorkerRow>>;
}

/// Citizens' SMS replies (BAJA / ALTA).
#[async_trait]
pub trait ReplyStore: Send + Sync {
    /// Records an inbound SMS and applies its keyword, in one transaction:
    /// BAJA adds an SMS suppression of the citizen's own; ALTA removes only
    /// that one, never one from a bounce, an invalid number or the call centre.
    async fn apply_reply(&self, inbound: &NewInbound, now: i64) -> StoreResult<AppliedReply>;
    /// How the confirmation reply to inbound SMS `inbound_id` went; false if
    /// there is no such SMS.
    async fn record_reply(
        &self,
        inbound_id: i64,
        status: ReplyStatus,
        detail: Option<String>,
    ) -> StoreResult<bool>;
    /// Up to `limit` inbound SMS with ids above `after_id`, in id order.
    async fn inbound_log(&self, after_id: i64, limit: i64) -> StoreResult<Vec<InboundRecord>>;
}
