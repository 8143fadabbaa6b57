//! Outcomes are committed in batches: one transaction per [`RECORD_BATCH`]
//! outcomes or per 50 ms, whichever comes first. The batch bounds how many
//! sent-but-unrecorded messages a crash can leave (and so re-send).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::WorkerReport;
use crate::campaigns::{Outcome, OutcomeKind};
use crate::clock::Clock;
use crate::store::Store;

/// Outcomes committed per transaction, at most.
pub const RECORD_BATCH: usize = 256;
const LINGER: Duration = Duration::from_millis(50);
/// How long to keep trying when the database is unreachable before giving up
/// on a batch (its messages are then re-sent when their leases expire).
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

enum Command {
    Record(Box<Outcome>),
    Flush(oneshot::Sender<()>),
}

pub struct Recorder {
    tx: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<WorkerReport>,
}

/// A cheap handle for send tasks.
#[derive(Clone)]
pub struct RecorderHandle {
    tx: mpsc::Sender<Command>,
}

impl RecorderHandle {
    pub async fn record(&self, outcome: Outcome) {
        if self
            .tx
            .send(Command::Record(Box::new(outcome)))
            .await
            .is_err()
        {
            tracing::error!("outcome of a message could not be recorded: the recorder stopped");
        }
    }
}

impl Recorder {
    pub fn spawn(store: Arc<dyn Store>, worker: String, clock: Arc<dyn Clock>) -> Recorder {
        let (tx, rx) = mpsc::channel(RECORD_BATCH * 4);
        let task = tokio::spawn(run(store, worker, clock, rx));
        Recorder { tx, task }
    }

    pub fn sender(&self) -> RecorderHandle {
        RecorderHandle {
            tx: self.tx.clone(),
        }
    }

    /// Returns once everything recorded so far is committed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Command::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Commits what is left and returns the totals.
    pub async fn close(self) -> WorkerReport {
        drop(self.tx);
        self.task.await.unwrap_or_default()
    }
}

async fn run(
    store: Arc<dyn Store>,
    worker: String,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Command>,
) -> WorkerReport {
    let mut committer = Committer {
        store,
        worker,
        clock,
        report: WorkerReport::default(),
        progress: Progress::new(),
    };
    let mut batch: Vec<Outcome> = Vec::with_capacity(RECORD_BATCH);
    // The oldest outcome waits at most LINGER, however steadily others arrive.
    let mut deadline = tokio::time::Instant::now();
    loop {
        let command = if batch.is_empty() {
            let command = rx.recv().await;
            deadline = tokio::time::Instant::now() + LINGER;
            command
        } else {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(command) => command,
                Err(_) => {
                    committer.commit(&mut batch).await;
                    continue;
                }
            }
        };
        match command {
            Some(Command::Record(outcome)) => {
                batch.push(*outcome);
                if batch.len() >= RECORD_BATCH {
                    committer.commit(&mut batch).await;
                }
            }
            Some(Command::Flush(ack)) => {
                committer.commit(&mut batch).await;
                let _ = ack.send(());
            }
            None => {
                committer.commit(&mut batch).await;
                return committer.report;
            }
        }
    }
}

/// A line in the log every ten seconds while a worker is busy, so operators
/// see it move (counts and rate only: no addresses).
struct Progress {
    last: std::time::Instant,
    sent_at_last: u64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            last: std::time::Instant::now(),
            sent_at_last: 0,
        }
    }

    fn log(&mut self, report: &WorkerReport) {
        let elapsed = self.last.elapsed();
        if elapsed < Duration::from_secs(10) {
            return;
        }
        let rate = (report.sent - self.sent_at_last) as f64 / elapsed.as_secs_f64();
        tracing::info!(
            "{} sent ({rate:.0}/s), {} to retry, {} failed, {} waiting for their window",
            report.sent,
            report.retrying,
            report.failed,
            report.deferred
        );
        self.last = std::time::Instant::now();
        self.sent_at_last = report.sent;
    }
}

/// Writes batches of outcomes, keeping the totals.
struct Committer {
    store: Arc<dyn Store>,
    worker: String,
    clock: Arc<dyn Clock>,
    report: WorkerReport,
    progress: Progress,
}

impl Committer {
    async fn commit(&mut self, batch: &mut Vec<Outcome>) {
        let report = &mut self.report;
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match self
                .store
                .record_outcomes(&self.worker, batch, self.clock.now_ms())
                .await
            {
                Ok(recorded) => {
                    report.lost_lease += recorded.lost_lease;
                    if recorded.lost_lease > 0 {
                        tracing::warn!(
                        "{} outcome(s) arrived after their lease expired; another worker owns those messages now",
                        recorded.lost_lease
                    );
                    }
                    for o in batch.iter() {
                        match &o.kind {
                            OutcomeKind::Sent { .. } => report.sent += 1,
                            OutcomeKind::Retry { .. } => report.retrying += 1,
                            OutcomeKind::Failed { .. } => report.failed += 1,
                            OutcomeKind::Deferred { .. } => report.deferred += 1,
                            OutcomeKind::Expired => report.expired += 1,
                        }
                    }
                    batch.clear();
                    self.progress.log(report);
                    return;
                }
                Err(e) if started.elapsed() < GIVE_UP_AFTER => {
                    tracing::warn!("cannot record {} outcome(s), retrying: {e}", batch.len());
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(
                    "gave up recording {} outcome(s): {e}; those messages will be sent again when their leases expire",
                    batch.len()
                );
                    batch.clear();
                    return;
                }
            }
        }
    }
}
