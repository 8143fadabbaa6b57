//! The retry policy for temporary failures. The delay is computed here with the
//! `backoff` crate's exponential policy (with jitter) and stored with the
//! message as `next_attempt_at`: retries wait in the database, not in memory.

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;

use crate::config::{
    RetryConfig, DEFAULT_RETRY_INITIAL_SECONDS, DEFAULT_RETRY_MAX_ATTEMPTS,
    DEFAULT_RETRY_MAX_INTERVAL_SECONDS, DEFAULT_RETRY_MULTIPLIER,
};

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub multiplier: f64,
    pub max_interval: Duration,
    pub max_attempts: u32,
    /// ±50 %: spreads the retries of a whole list after an outage.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from_config(&RetryConfig::default())
    }
}

impl RetryPolicy {
    /// `[retry]` of aviso.toml, the defaults where it says nothing.
    pub fn from_config(c: &RetryConfig) -> RetryPolicy {
        let initial = c.initial_seconds.unwrap_or(DEFAULT_RETRY_INITIAL_SECONDS);
        let max_interval = c
            .max_interval_seconds
            .unwrap_or(DEFAULT_RETRY_MAX_INTERVAL_SECONDS);
        RetryPolicy {
            initial: Duration::from_secs_f64(initial.max(0.0)),
            multiplier: c.multiplier.unwrap_or(DEFAULT_RETRY_MULTIPLIER).max(1.0),
            max_interval: Duration::from_secs_f64(max_interval.max(0.0)),
            max_attempts: c.max_attempts.unwrap_or(DEFAULT_RETRY_MAX_ATTEMPTS).max(1),
            jitter: 0.5,
        }
    }

    /// How long to wait after the `attempts`-th failed attempt (1-based).
    pub fn delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(64) as i32;
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let current = Duration::from_secs_f64(base.min(self.max_interval.as_secs_f64()));
        let mut policy = ExponentialBackoff {
            current_interval: current,
            initial_interval: self.initial,
            randomization_factor: self.jitter,
            multiplier: self.multiplier,
            max_interval: self.max_interval,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        policy.next_backoff().unwrap_or(current)
    }

    /// No attempts left after `attempts` tries.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_with_jitter_up_to_the_cap() {
        let p = RetryPolicy::default();
        for (attempt, base) in [
            (1, 30.0),
            (2, 60.0),
            (3, 120.0),
            (7, 1800.0),
            (8, 1800.0),
            (40, 1800.0),
        ] {
            for _ in 0..50 {
                let d = p.delay(attempt).as_secs_f64();
                assert!(
                    d >= base * 0.5 - 1e-6 && d <= base * 1.5 + 1e-6,
                    "attempt {attempt}: {d}"
                );
            }
        }
        assert!(!p.exhausted(7));
        assert!(p.exhausted(8));
    }
}
