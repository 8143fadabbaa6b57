//! A provider's `rate=` is the rate of all workers together. The pace lives in
//! the provider's `provider_state` row: the next free send slot and the rate in
//! force. A worker takes half a second's worth of slots at a time in one short
//! transaction (on PostgreSQL the row lock makes concurrent takes queue, so no
//! two workers ever hold the same slot), and spaces its sends over them.
//!
//! Chosen over dividing the rate by the number of live workers: that needs the
//! count to be right at every instant (a worker starting or dying overshoots
//! or wastes the rate until the others notice), and it gives an idle worker a
//! share it does not use. Slots cost one round trip per half second of sending
//! whatever the number of messages. A refusal is written to the row at once
//! (at most once a second per worker), and every worker's next take, within
//! half a second, gets the lower rate; while refusals keep coming, successes
//! elsewhere do not raise it again.
//!
//! Slot times are wall-clock milliseconds, so the hosts' clocks must agree
//! (NTP); they are read from the system, not from the worker's `Clock`, which
//! tests may hold still.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::{PaceSignal, Store, PACE_STEP_MS};

/// How much sending a worker takes in one go, in seconds of the rate: the
/// fleet takes slots four times a second whatever its size, and a lower rate
/// reaches every worker after at most this much per worker of slots taken.
const TAKE_SECONDS: f64 = 0.25;
/// A slot that passed by more than this (or one interval, if longer) while
/// nobody needed it is dropped rather than used late: sending several late
/// slots at once would be a burst over the rate.
const LATE_MS: f64 = 50.0;
/// After a failed take the worker sends one message and waits this long:
/// without the database, it cannot know what the others send.
const TAKE_RETRY: Duration = Duration::from_secs(1);

/// Slots taken and not yet handed to a sender.
#[derive(Debug, Default)]
struct Slots {
    next: f64,
    interval: f64,
    left: u32,
}

pub(super) struct SharedPace {
    name: String,
    ceiling: f64,
    store: Arc<dyn Store>,
    slots: tokio::sync::Mutex<Slots>,
    /// What to tell the others with the next take.
    signal: Mutex<Option<PaceSignal>>,
    /// The slots in hand end before the provider's Retry-After.
    stale: AtomicBool,
    /// The rate in force at the last take.
    rate: Mutex<f64>,
    /// When a refusal was last told outside a take (wall-clock ms).
    told_at: Mutex<f64>,
}

impl SharedPace {
    pub(super) fn new(name: &str, ceiling: f64, store: Arc<dyn Store>) -> SharedPace {
        SharedPace {
            name: name.to_string(),
            ceiling,
            store,
            slots: tokio::sync::Mutex::new(Slots::default()),
            signal: Mutex::new(None),
            stale: AtomicBool::new(false),
            rate: Mutex::new(ceiling),
            told_at: Mutex::new(0.0),
        }
    }

    /// Waits for this worker's next send slot. Senders wait in turn, so that
    /// a worker books no slot before the previous one is due: a lower rate
    /// then applies from the next take, not after a queue of slots booked
    /// at the old one.
    pub(super) async fn wait_turn(&self) {
        let mut slots = self.slots.lock().await;
        let now = wall_ms();
        if self.stale.swap(false, Ordering::SeqCst) {
            slots.left = 0;
        }
        while slots.left > 0 && slots.next + slots.interval.max(LATE_MS) < now {
            slots.next += slots.interval;
            slots.left -= 1;
        }
        if slots.left > 0 && self.refusal_to_tell(now) {
            // Told at once rather than with the next take: the refusals must
            // reach the others within the second to hold their recovery back.
            let signal = lock(&self.signal).take();
            match self
                .store
                .take_pace(&self.name, self.ceiling, 0, signal, now)
                .await
            {
                Ok(grant) => *lock(&self.rate) = grant.rate,
                Err(e) => tracing::warn!("cannot tell the other workers to slow down: {e}"),
            }
        }
        if slots.left == 0 {
            let signal = lock(&self.signal).take();
            let wanted = (self.rate() * TAKE_SECONDS).ceil().max(1.0) as u32;
            match self
                .store
                .take_pace(&self.name, self.ceiling, wanted, signal, now)
                .await
            {
                Ok(grant) => {
                    *lock(&self.rate) = grant.rate;
                    *slots = Slots {
                        next: grant.first_slot,
                        interval: 1000.0 / grant.rate,
                        left: wanted,
                    };
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot take send slots for {} from the database: {e}; one message a second until it answers",
                        self.name
                    );
                    // The other senders wait behind this one.
                    tokio::time::sleep(TAKE_RETRY).await;
                    return;
                }
            }
        }
        let slot = slots.next;
        slots.next += slots.interval;
        slots.left -= 1;
        // Slots are absolute times: a sleep that overruns (the timer ticks
        // every millisecond) makes the next wait shorter, not the rate lower.
        let wait = (slot - wall_ms()) / 1000.0;
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// The provider pushed back: every worker halves its pace from its next
    /// take. The slots in hand (at most half a second's) are used first: each
    /// dropped slot would be lost to every worker, and a provider refusing a
    /// burst would then starve the fleet. Only a Retry-After drops them, as
    /// nothing may go out before it.
    pub(super) fn slow_down(&self, retry_after: Option<Duration>) {
        let retry_after_ms = retry_after.map(|d| d.as_millis() as i64);
        *lock(&self.signal) = Some(PaceSignal::SlowDown { retry_after_ms });
        if retry_after.is_some() {
            self.stale.store(true, Ordering::SeqCst);
        }
    }

    /// A success: a reduced rate may creep back up (once a second, for all).
    pub(super) fn recovered(&self) {
        if self.rate() >= self.ceiling {
            return;
        }
        let mut signal = lock(&self.signal);
        if signal.is_none() {
            *signal = Some(PaceSignal::Recovered);
        }
    }

    /// The rate in force when this worker last took slots.
    pub(super) fn rate(&self) -> f64 {
        *lock(&self.rate)
    }

    /// Whether a refusal waits to be told, and none was told within a step:
    /// a burst of refusals costs one statement a second, not one each.
    fn refusal_to_tell(&self, now: f64) -> bool {
        if !matches!(*lock(&self.signal), Some(PaceSignal::SlowDown { .. })) {
            return false;
        }
        let mut told_at = lock(&self.told_at);
        if now - *told_at < PACE_STEP_MS as f64 {
            return false;
        }
        *told_at = now;
        true
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values: a panic while holding the lock cannot leave them inconsistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}
