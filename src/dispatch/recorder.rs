//! Outcomes are committed in batches: a transaction once [`DUE`] outcomes
//! wait or the oldest has waited 50 ms. Those waiting and those being
//! committed together never exceed [`RECORD_BATCH`]: that bounds how many
//! sent-but-unrecorded messages a crash can leave (and so re-send), however
//! slowly the database commits.
//!
//! Senders leave outcomes in a shared buffer and wake the committer only when
//! a batch is due (or the first outcome of one starts its 50 ms): waking it
//! for every message cost a task switch per SMS, often on the other thread.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use serde::Serialize;

use crate::campaigns::{Outcome, OutcomeKind};
use crate::clock::Clock;
use crate::store::{Store, RECORD_BATCH};

/// What a worker did, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerReport {
    pub sent: u64,
    pub retrying: u64,
    pub failed: u64,
    pub deferred: u64,
    pub expired: u64,
    pub lost_lease: u64,
    pub released: u64,
    /// Messages sent in Spanish because their template lacks the contact's language.
    pub language_fallbacks: u64,
}

/// The committer takes a batch once this many wait, so that the next half can
/// gather while one commits. (When each commit waited for a full 256 and
/// another 256 could wait behind it, a database slowed by a busy host let a
/// crash re-send more than `concurrency + 256`.)
const DUE: usize = RECORD_BATCH / 2;
const LINGER: Duration = Duration::from_millis(50);
/// How long to keep trying when the database is unreachable before giving up
/// on a batch (its messages are then re-sent when their leases expire).
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Waiting {
    outcomes: Vec<Outcome>,
    /// Outcomes taken by the committer and not yet committed.
    committing: usize,
    flushes: Vec<oneshot::Sender<()>>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    /// Rung for the committer: a batch to write, a flush, or the close.
    work: Notify,
    /// Rung for senders: a commit finished, so there is room again.
    room: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // Nothing panics while holding the lock; a poisoned one is still whole.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) struct Recorder {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<WorkerReport>,
}

/// A cheap handle for send tasks.
#[derive(Clone)]
pub(super) struct RecorderHandle {
    shared: Arc<Shared>,
}

impl RecorderHandle {
    pub(super) async fn record(&self, outcome: Outcome) {
        loop {
            // Made before looking, so the committer's next `notify_waiters`
            // reaches it; registering it costs nothing while there is room.
            let room = self.shared.room.notified();
            {
                let mut waiting = self.shared.lock();
                if waiting.closed {
                    tracing::error!(
                        "outcome of a message could not be recorded: the recorder stopped"
                    );
                    return;
                }
                if waiting.outcomes.len() + waiting.committing < RECORD_BATCH {
                    waiting.outcomes.push(outcome);
                    let n = waiting.outcomes.len();
                    drop(waiting);
                    if n == 1 || n == DUE {
                        self.shared.work.notify_one();
                    }
                    return;
                }
            }
            room.await;
        }
    }
}

impl Recorder {
    pub(super) fn spawn(store: Arc<dyn Store>, worker: String, clock: Arc<dyn Clock>) -> Recorder {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(store, worker, clock, shared.clone()));
        Recorder { shared, task }
    }

    pub(super) fn sender(&self) -> RecorderHandle {
        RecorderHandle {
            shared: self.shared.clone(),
        }
    }

    /// Returns once everything recorded so far is committed.
    pub(super) async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        {
            let mut waiting = self.shared.lock();
            if waiting.closed {
                return;
            }
            waiting.flushes.push(ack);
        }
        self.shared.work.notify_one();
        let _ = done.await;
    }

    /// Commits what is left and returns the totals.
    pub(super) async fn close(self) -> WorkerReport {
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
        self.task.await.unwrap_or_default()
    }
}

async fn run(
    store: Arc<dyn Store>,
    worker: String,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
) -> WorkerReport {
    let _stopped = StopOnDrop(shared.clone());
    let mut committer = Committer {
        store,
        worker,
        clock,
        report: WorkerReport::default(),
        progress: Progress::new(),
    };
    // The oldest waiting outcome waits at most LINGER, however steadily others arrive.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        match deadline {
            Some(at) => {
                let _ = tokio::time::timeout_at(at, shared.work.notified()).await;
            }
            None => shared.work.notified().await,
        }
        let (batch, flushes, closed) = {
            let mut waiting = shared.lock();
            let lingered = deadline.is_some_and(|at| tokio::time::Instant::now() >= at);
            let due = lingered
                || waiting.outcomes.len() >= DUE
                || !waiting.flushes.is_empty()
                || waiting.closed;
            if !due {
                if deadline.is_none() && !waiting.outcomes.is_empty() {
                    deadline = Some(tokio::time::Instant::now() + LINGER);
                }
                continue;
            }
            // Nothing is being committed now, so this is at most RECORD_BATCH:
            // one transaction.
            let batch = std::mem::take(&mut waiting.outcomes);
            waiting.committing = batch.len();
            (batch, std::mem::take(&mut waiting.flushes), waiting.closed)
        };
        deadline = None;
        committer.commit(&batch).await;
        shared.lock().committing = 0;
        shared.room.notify_waiters();
        for ack in flushes {
            let _ = ack.send(());
        }
        if closed {
            return committer.report;
        }
    }
}

/// Should the committer ever stop unexpectedly, senders waiting for room are
/// let go (and log the outcomes lost), and flushes return, instead of waiting
/// forever.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let mut waiting = self.0.lock();
        waiting.closed = true;
        waiting.flushes.clear();
        drop(waiting);
        self.0.room.notify_waiters();
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
    async fn commit(&mut self, batch: &[Outcome]) {
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
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn outcome(message_id: i64) -> Outcome {
        Outcome {
            message_id,
            lease_epoch: 1,
            provider: "test".into(),
            code: None,
            reason: None,
            latency_ms: None,
            kind: OutcomeKind::Sent {
                provider_ref: None,
                segments: None,
            },
        }
    }

    /// Many senders at once, more outcomes than the buffer holds, flushes in
    /// between: each outcome is committed exactly once (here none has a
    /// message, so each comes back as a lost lease).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_outcome_is_committed_once_and_a_flush_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("aviso.db").display());
        let store = crate::store::open(&url).await.unwrap();
        let recorder = Recorder::spawn(store, "w".into(), Arc::new(SystemClock));
        let mut senders = tokio::task::JoinSet::new();
        for task in 0..8 {
            let handle = recorder.sender();
            senders.spawn(async move {
                for i in 0..(RECORD_BATCH as i64) {
                    handle.record(outcome(task * 10_000 + i)).await;
                }
            });
        }
        recorder.flush().await;
        while let Some(done) = senders.join_next().await {
            done.unwrap();
        }
        let lone = recorder.sender();
        lone.record(outcome(-1)).await;
        tokio::time::timeout(Duration::from_secs(5), recorder.flush())
            .await
            .expect("a flush returns once what was recorded is committed");
        // A lone outcome would otherwise wait its 50 ms: the flush made the
        // committer take it (it acknowledges only after the commit).
        assert!(
            recorder.shared.lock().outcomes.is_empty(),
            "the flush returned before its outcome was taken"
        );
        let report = recorder.close().await;
        let total = 8 * RECORD_BATCH as u64 + 1;
        assert_eq!(report.sent, total);
        assert_eq!(report.lost_lease, total);
        // After the close, an outcome is refused rather than waited on forever.
        tokio::time::timeout(Duration::from_secs(5), lone.record(outcome(-2)))
            .await
            .expect("recording after the close returns");
    }

    /// A sender recording one more outcome, checked to be waiting for room.
    async fn waiting_sender(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
        let handle = RecorderHandle {
            shared: shared.clone(),
        };
        let sender = tokio::spawn(async move { handle.record(outcome(-1)).await });
        tokio::task::yield_now().await;
        assert!(
            !sender.is_finished(),
            "{RECORD_BATCH} unrecorded already: the sender waits"
        );
        sender
    }

    /// Outcomes in the transaction under way count against the limit: a
    /// sender waits while they and those waiting fill it, even though fewer
    /// than a batch wait, and goes on when the commit finishes.
    #[tokio::test]
    async fn outcomes_being_committed_count_against_the_crash_window() {
        let shared = Arc::new(Shared::default());
        {
            let mut waiting = shared.lock();
            waiting.committing = DUE;
            waiting
                .outcomes
                .extend((0..(RECORD_BATCH - DUE) as i64).map(outcome));
        }
        let sender = waiting_sender(&shared).await;
        shared.lock().committing = 0;
        shared.room.notify_waiters();
        tokio::time::timeout(Duration::from_secs(5), sender)
            .await
            .expect("the sender goes on once the commit is done")
            .unwrap();
        assert_eq!(shared.lock().outcomes.len(), RECORD_BATCH - DUE + 1);
    }

    /// A sender waiting for room, and a flush waiting for its commit, are
    /// let go when the committer stops, even by a panic, instead of hanging
    /// the worker.
    #[tokio::test]
    async fn a_sender_waiting_for_room_is_let_go_when_the_committer_stops() {
        let shared = Arc::new(Shared::default());
        shared
            .lock()
            .outcomes
            .extend((0..RECORD_BATCH as i64).map(outcome));
        let (ack, flushed) = oneshot::channel();
        shared.lock().flushes.push(ack);
        let waiting = waiting_sender(&shared).await;
        drop(StopOnDrop(shared.clone()));
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the sender is let go")
            .unwrap();
        assert_eq!(shared.lock().outcomes.len(), RECORD_BATCH);
        tokio::time::timeout(Duration::from_secs(5), flushed)
            .await
            .expect("the flush is let go")
            .expect_err("nothing was committed for it");
    }
}
