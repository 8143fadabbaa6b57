//! Per-provider pacing: a rate (messages per second) and a cap on connections.
//! When a provider says "slow down" (SMTP 421/451/452, HTTP 429) the rate
//! halves, at most once a second (a burst of refusals is one signal, as in TCP
//! congestion control); once a second has passed without a refusal, successes
//! raise it by a quarter, at most once a second, until it is back where it was.
//!
//! Written by hand rather than with `governor` because the rate must change
//! while running (halve, then recover), which a fixed quota cannot do.
//!
//! A provider with a configured rate is paced for all workers together by
//! [`SharedPace`](super::shared_pace::SharedPace), by the same rules; this
//! gate then only caps its connections.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::store::{PACE_FLOOR as FLOOR, PACE_RECOVERY as RECOVERY, PACE_STEP_MS};

/// Milliseconds between two changes of the rate.
const STEP_MS: f64 = PACE_STEP_MS as f64;

#[derive(Debug)]
struct Pace {
    /// The configured rate; `None` is "as fast as the connections allow".
    ceiling: Option<f64>,
    /// The rate in force; `None` while unlimited.
    current: Option<f64>,
    /// When an unlimited provider was slowed, the rate it recovers to before
    /// becoming unlimited again.
    release_at: f64,
    /// Earliest time (ms) the next message may start.
    next_free: f64,
    /// Recent throughput, to know what "half" means for an unlimited provider.
    observed: Throughput,
    /// When the rate last changed (ms), to change it at most once per step.
    changed_at: f64,
    /// When the provider last refused (ms): every refusal holds recovery back
    /// for a step, as the shared pace does, so that a success slipping in
    /// between refusals does not undo the halving.
    slowed_at: f64,
}

#[derive(Debug, Default)]
struct Throughput {
    window_start: f64,
    count: f64,
    rate: f64,
}

impl Throughput {
    fn tick(&mut self, now: f64) {
        if now - self.window_start >= 1000.0 {
            let elapsed = (now - self.window_start).max(1.0);
            self.rate = self.count * 1000.0 / elapsed;
            self.window_start = now;
            self.count = 0.0;
        }
        self.count += 1.0;
    }
}

/// What `campaign status` shows about a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct PaceReport {
    pub ceiling: Option<f64>,
    pub current: Option<f64>,
}

#[derive(Debug)]
pub struct ProviderGate {
    pace: Mutex<Pace>,
    connections: Semaphore,
}

impl ProviderGate {
    pub fn new(rate: Option<f64>, connections: usize) -> ProviderGate {
        ProviderGate {
            pace: Mutex::new(Pace {
                ceiling: rate,
                current: rate,
                release_at: 0.0,
                next_free: 0.0,
                observed: Throughput::default(),
                changed_at: f64::MIN,
                slowed_at: f64::MIN,
            }),
            connections: Semaphore::new(connections.max(1)),
        }
    }

    /// How long the caller must wait, at `now_ms`, before sending; books the slot.
    pub fn reserve(&self, now_ms: f64) -> Duration {
        let mut pace = self.lock();
        pace.observed.tick(now_ms);
        let start = pace.next_free.max(now_ms);
        pace.next_free = match pace.current {
            Some(rate) => start + 1000.0 / rate,
            None => start,
        };
        Duration::from_secs_f64(((start - now_ms) / 1000.0).max(0.0))
    }

    /// The provider pushed back: halve the rate, and wait `retry_after` if given.
    pub fn slow_down(&self, now_ms: f64, retry_after: Option<Duration>) {
        let mut pace = self.lock();
        if let Some(wait) = retry_after {
            pace.next_free = pace.next_free.max(now_ms + wait.as_secs_f64() * 1000.0);
        }
        pace.slowed_at = pace.slowed_at.max(now_ms);
        if now_ms - pace.changed_at < STEP_MS {
            return;
        }
        pace.changed_at = now_ms;
        let base = match pace.current {
            Some(rate) => rate,
            None => {
                pace.release_at = pace.observed.rate.max(2.0 * FLOOR);
                pace.release_at
            }
        };
        pace.current = Some((base / 2.0).max(FLOOR));
        tracing::info!(
            "provider asked to slow down: now {:.1} messages/s",
            pace.current.unwrap_or(FLOOR)
        );
    }

    /// A success: let a reduced rate creep back up.
    pub fn recovered(&self, now_ms: f64) {
        let mut pace = self.lock();
        let Some(rate) = pace.current else { return };
        if pace.current == pace.ceiling
            || now_ms - pace.changed_at < STEP_MS
            || now_ms - pace.slowed_at < STEP_MS
        {
            return;
        }
        pace.changed_at = now_ms;
        let raised = rate * RECOVERY;
        pace.current = match pace.ceiling {
            Some(ceiling) => Some(raised.min(ceiling)),
            None if raised >= pace.release_at => None,
            None => Some(raised),
        };
    }

    pub fn report(&self) -> PaceReport {
        let pace = self.lock();
        PaceReport {
            ceiling: pace.ceiling,
            current: pace.current,
        }
    }

    pub fn connections(&self) -> &Semaphore {
        &self.connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pace> {
        // A panic while holding this lock cannot leave the numbers inconsistent.
        self.pace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_spaces_messages_evenly() {
        let gate = ProviderGate::new(Some(10.0), 1);
        let waits: Vec<u128> = (0..4).map(|_| gate.reserve(0.0).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 300]);
        assert_eq!(gate.reserve(1000.0).as_millis(), 0, "time has passed");
    }

    #[test]
    fn throttling_halves_once_a_second_and_successes_recover_to_the_ceiling() {
        let gate = ProviderGate::new(Some(100.0), 1);
        gate.slow_down(0.0, None);
        assert_eq!(gate.report().current, Some(50.0));
        gate.slow_down(10.0, None);
        assert_eq!(
            gate.report().current,
            Some(50.0),
            "a burst of refusals is one signal"
        );
        gate.slow_down(1000.0, None);
        assert_eq!(gate.report().current, Some(25.0));
        gate.recovered(1500.0);
        assert_eq!(
            gate.report().current,
            Some(25.0),
            "no change within a second"
        );
        let mut now = 2000.0;
        for _ in 0..10 {
            gate.recovered(now);
            now += 1000.0;
        }
        assert_eq!(
            gate.report().current,
            Some(100.0),
            "back to the configured rate"
        );
    }

    #[test]
    fn refusals_between_successes_hold_recovery_back() {
        let gate = ProviderGate::new(None, 1);
        for i in 0..200 {
            gate.reserve(i as f64 * 5.0); // 200 messages/s
        }
        gate.slow_down(1000.0, None);
        let mut now = 1000.0;
        // A refusal every half second, successes in between: the rate only falls.
        for _ in 0..6 {
            now += 500.0;
            gate.recovered(now - 1.0);
            gate.slow_down(now, None);
        }
        let rate = gate.report().current.expect("still limited");
        assert!(rate < 100.0 / 4.0, "{rate}");
        gate.recovered(now + 999.0);
        assert_eq!(
            gate.report().current,
            Some(rate),
            "quiet for less than a step"
        );
        gate.recovered(now + 1000.0);
        assert_eq!(gate.report().current, Some(rate * 1.25));
    }

    #[test]
    fn an_unlimited_provider_is_slowed_to_half_its_pace_then_released() {
        let gate = ProviderGate::new(None, 1);
        for i in 0..400 {
            gate.reserve(i as f64 * 5.0); // 200 messages/s over two seconds
        }
        gate.slow_down(2000.0, Some(Duration::from_secs(3)));
        let slowed = gate.report().current.expect("now limited");
        assert!((90.0..=110.0).contains(&slowed), "{slowed}");
        assert!(
            gate.reserve(2000.0) >= Duration::from_secs(3),
            "Retry-After is honoured"
        );
        let mut now = 3000.0;
        for _ in 0..10 {
            gate.recovered(now);
            now += 1000.0;
        }
        assert_eq!(gate.report().current, None, "back to unlimited");
    }
}
