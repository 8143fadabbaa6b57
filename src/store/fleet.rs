//! What the store keeps so that several workers act as one sender: a shared
//! pace per provider, and a heartbeat per worker. The SQL is in `sql/fleet.rs`.

use serde::Serialize;

/// What a worker learnt about a provider since it last took send slots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PaceSignal {
    /// The provider asked to slow down (421/451/452, 429); it may have said
    /// for how long (Retry-After, in ms).
    SlowDown { retry_after_ms: Option<i64> },
    /// Messages are going through again.
    Recovered,
}

/// Send slots taken from a provider's shared pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceGrant {
    /// When the first slot starts, in ms since the epoch; the others follow
    /// at `1000 / rate` ms intervals.
    pub first_slot: f64,
    /// The provider's rate now in force for every worker, messages per second.
    pub rate: f64,
}

/// A running worker, as it registers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// As in the leases it takes.
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    /// Silent for longer than this, the worker is taken for lost.
    pub lease_ms: i64,
    pub started_at: i64,
}

/// A registered worker and the messages it holds leased now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRow {
    pub info: WorkerInfo,
    pub heartbeat_at: i64,
    /// (campaign id, messages leased), by campaign.
    pub leased: Vec<(i64, i64)>,
}

/// Whether a worker still reports in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerHealth {
    Live,
    /// Silent past its lease: killed, or its host is gone. Its messages go
    /// back to the queue as their leases expire.
    Lost,
}

impl WorkerRow {
    pub fn health(&self, now: i64) -> WorkerHealth {
        match now - self.heartbeat_at > self.info.lease_ms {
            true => WorkerHealth::Lost,
            false => WorkerHealth::Live,
        }
    }
}

/// Rows of workers lost longer than this are deleted by housekeeping: a day,
/// so that the morning shift still sees which worker vanished overnight.
pub const LOST_WORKERS_KEPT_MS: i64 = 24 * 3_600_000;

/// The slowest a throttled provider is driven, in messages per second.
pub const PACE_FLOOR: f64 = 1.0;
/// Each step of recovery raises a reduced rate by this factor.
pub const PACE_RECOVERY: f64 = 1.25;
/// Milliseconds between two changes of a provider's rate, across all workers:
/// a burst of refusals seen by several workers is one signal.
pub const PACE_STEP_MS: i64 = 1000;

/// Why `campaign status` lists a provider as slowed down.
pub const SLOWED_REASON: &str = "slowed down: the provider asked us to (421/451/452 or 429)";
