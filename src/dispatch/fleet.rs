//! Workers as one fleet: each registers itself (host, pid, version, start
//! time), reports in every few seconds, and deregisters when it stops cleanly.
//! `aviso workers` lists them; one silent past its lease is `lost`, and the
//! messages it leased go back to the queue as those leases expire.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::clock::Clock;
use crate::store::{Store, StoreResult, WorkerHealth, WorkerInfo};

/// How often a worker reports in: every few seconds, not per message; more
/// often only when its lease is shorter than three beats.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The host name, as worker ids and `aviso workers` show it.
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// This process, registering as worker `id`.
pub(super) fn this_worker(id: &str, lease: Duration, now: i64) -> WorkerInfo {
    WorkerInfo {
        id: id.to_string(),
        host: hostname(),
        pid: i64::from(std::process::id()),
        version: env!("CARGO_PKG_VERSION").to_string(),
        lease_ms: lease.as_millis() as i64,
        started_at: now,
    }
}

/// Reports in every [`HEARTBEAT`] (or a third of the lease, if shorter) and
/// extends the worker's leases every third of the lease, while it works
/// through a slow batch. Registers again if its row was pruned meanwhile.
pub(super) fn spawn_heartbeat(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    worker: WorkerInfo,
    lease: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let extend_every = lease / 3;
        let beat = HEARTBEAT.min(extend_every).max(Duration::from_millis(100));
        let mut since_extended = Duration::ZERO;
        loop {
            tokio::time::sleep(beat).await;
            let now = clock.now_ms();
            match store.worker_heartbeat(&worker.id, now).await {
                Ok(true) => {}
                Ok(false) => {
                    if let Err(e) = store.register_worker(&worker, now).await {
                        tracing::warn!("could not register the worker again: {e}");
                    }
                }
                Err(e) => tracing::warn!("could not write the worker's heartbeat: {e}"),
            }
            since_extended += beat;
            if since_extended >= extend_every {
                since_extended = Duration::ZERO;
                let until = now + lease.as_millis() as i64;
                if let Err(e) = store.extend_leases(&worker.id, until).await {
                    tracing::warn!("could not extend leases: {e}");
                }
            }
        }
    })
}

/// One worker, as `aviso workers --json` prints it (documented in README.md).
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub state: WorkerHealth,
    pub started_at: String,
    pub last_heartbeat_at: String,
    /// Seconds since the last heartbeat.
    pub silent_seconds: i64,
    /// Messages it holds leased now, in all campaigns.
    pub leased: i64,
    pub campaigns: Vec<CampaignLeases>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CampaignLeases {
    pub campaign_id: i64,
    pub leased: i64,
}

/// Every registered worker, oldest first, with its times in `zone`.
pub async fn workers_status(
    store: &dyn Store,
    zone: chrono_tz::Tz,
    now: i64,
) -> StoreResult<Vec<WorkerStatus>> {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    };
    Ok(store
        .workers()
        .await?
        .into_iter()
        .map(|w| WorkerStatus {
            state: w.health(now),
            started_at: time(w.info.started_at),
            last_heartbeat_at: time(w.heartbeat_at),
            silent_seconds: ((now - w.heartbeat_at) / 1000).max(0),
            leased: w.leased.iter().map(|(_, n)| n).sum(),
            campaigns: w
                .leased
                .iter()
                .map(|&(campaign_id, leased)| CampaignLeases {
                    campaign_id,
                    leased,
                })
                .collect(),
            id: w.info.id,
            host: w.info.host,
            pid: w.info.pid,
            version: w.info.version,
        })
        .collect())
}
