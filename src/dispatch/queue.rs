//! The queue between the claiming loop and the senders, and the counts that
//! tell the loop when to claim more.

use super::*;

/// Claimed messages on their way to the senders.
pub(super) struct Queue {
    pub(super) tx: flume::Sender<Claimed>,
    /// Kept to take back, at a stop, what no sender took.
    pub(super) rx: flume::Receiver<Claimed>,
    pub(super) state: Arc<QueueState>,
    /// The next batch is claimed when the queue is down to this many.
    pub(super) low_water: usize,
}

impl Queue {
    /// Returns once the queue holds at most `low_water` messages, or at a stop.
    pub(super) async fn drained_to_low_water(&self, shutdown: &mut watch::Receiver<bool>) {
        loop {
            if self.rx.len() <= self.low_water {
                return;
            }
            let wait = self.state.refill.notified();
            self.state
                .refill_wanted
                .store(true, std::sync::atomic::Ordering::SeqCst);
            // Taken meanwhile: no sender would look at the flag again.
            if self.rx.len() <= self.low_water {
                return;
            }
            tokio::select! {
                _ = wait => {}
                _ = stopped(shutdown) => return,
            }
        }
    }
}

/// What the worker loop and the senders tell each other.
#[derive(Default)]
pub(super) struct QueueState {
    /// Messages queued or being sent and not yet recorded.
    pub(super) unfinished: std::sync::atomic::AtomicUsize,
    /// Rung when `unfinished` drops to zero.
    pub(super) settled: tokio::sync::Notify,
    /// The loop waits for the queue to run low.
    pub(super) refill_wanted: std::sync::atomic::AtomicBool,
    pub(super) refill: tokio::sync::Notify,
}

impl QueueState {
    pub(super) fn added(&self) {
        self.unfinished
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn finished(&self) {
        if self
            .unfinished
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.settled.notify_one();
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.unfinished.load(std::sync::atomic::Ordering::SeqCst) == 0
    }
}
