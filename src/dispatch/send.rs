//! The senders: claimed messages from the queue, each rendered, paced, sent
//! and turned into an outcome for the recorder.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::compose::{CampaignPlan, Composer};
use super::queue::QueueState;
use super::rate::ProviderGate;
use super::recorder;
use super::retry::RetryPolicy;
use super::shared_pace::SharedPace;
use crate::campaigns::{ClaimedMessage, Outcome, OutcomeKind};
use crate::channels::{Channel, DeliveryError, Outgoing};
use crate::clock::Clock;
use crate::domain::{mask_address, ChannelKind, SuppressionScope};
use crate::schedule::zones::zones_of;

/// A claimed message with the plan and provider it goes through.
pub(super) type Claimed = (Arc<CampaignPlan>, Arc<dyn Channel>, ClaimedMessage);

/// Shared with every send task.
pub(super) struct SendContext {
    pub(super) composer: Arc<Composer>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) retry: RetryPolicy,
    pub(super) send_timeout: Duration,
    /// Pacing per provider, by provider name: the connection cap, and the
    /// rate of providers that have no configured one.
    pub(super) gates: HashMap<String, Arc<ProviderGate>>,
    /// The rate of providers that have one, shared with every other worker.
    pub(super) shared: HashMap<String, Arc<SharedPace>>,
    /// When a provider without a shared rate last asked this worker to slow
    /// down (wall-clock ms), for the state watcher to tell the other workers.
    pub(super) refused_at: std::sync::Mutex<HashMap<String, i64>>,
    /// The origin of the monotonic milliseconds the gates count in.
    pub(super) started: std::time::Instant,
    /// Where recipients of unknown countries are taken to live.
    pub(super) zone: chrono_tz::Tz,
    /// Campaigns currently running, refreshed twice a second: a message whose
    /// campaign was paused or cancelled after it was claimed goes back unsent.
    pub(super) running: std::sync::RwLock<HashSet<i64>>,
}

impl SendContext {
    pub(super) fn is_running(&self, campaign_id: i64) -> bool {
        self.running
            .read()
            .map(|set| set.contains(&campaign_id))
            .unwrap_or(true)
    }
}

/// Sends queued messages one at a time until the queue closes. At a stop it
/// sends nothing more and returns what it took unsent, to be released.
pub(super) async fn sender(
    queue: flume::Receiver<Claimed>,
    state: Arc<QueueState>,
    low_water: usize,
    context: Arc<SendContext>,
    recorder: recorder::RecorderHandle,
    shutdown: watch::Receiver<bool>,
) -> Vec<i64> {
    let mut unsent = Vec::new();
    while let Ok((plan, channel, message)) = queue.recv_async().await {
        if queue.len() <= low_water
            && state
                .refill_wanted
                .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            state.refill.notify_one();
        }
        if *shutdown.borrow() {
            unsent.push(message.id);
        } else {
            // A panic here must not take the sender, nor the count, with it:
            // the message is left to its lease and sent again later.
            let send = async {
                let outcome = send_one(&context, &plan, channel.as_ref(), &message).await;
                recorder.record(outcome).await;
            };
            if futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(send))
                .await
                .is_err()
            {
                tracing::error!(
                    "sending message {} failed unexpectedly; it is retried when its lease expires",
                    message.id
                );
            }
        }
        state.finished();
    }
    unsent
}

/// Resolves when shutdown is asked for; never, if nobody can ask any more.
pub(super) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Renders and sends one message, and says what happened.
async fn send_one(
    ctx: &SendContext,
    plan: &CampaignPlan,
    channel: &dyn Channel,
    m: &ClaimedMessage,
) -> Outcome {
    let outcome =
        |provider: &str, code: Option<String>, reason: Option<String>, latency_ms, kind| Outcome {
            message_id: m.id,
            lease_epoch: m.lease_epoch,
            provider: provider.to_string(),
            code,
            reason,
            latency_ms,
            kind,
        };
    let now = ctx.clock.now_ms();
    if plan.expires_at.is_some_and(|at| at <= now) {
        return outcome(
            channel.name(),
            None,
            Some("campaign expired".into()),
            None,
            OutcomeKind::Expired,
        );
    }
    if let Some(window) = &plan.window {
        let zones = m
            .country
            .as_deref()
            .and_then(zones_of)
            .unwrap_or(std::slice::from_ref(&ctx.zone));
        let at = ctx.clock.now();
        if !window.is_open(zones, at) {
            // Waits for the window without using an attempt.
            let next = window
                .next_open(zones, at)
                .unwrap_or(at + chrono::Duration::hours(24))
                .timestamp_millis();
            let reason = format!("outside the send window {window} of the recipient's time zone");
            return outcome(
                channel.name(),
                Some("window".into()),
                Some(reason),
                None,
                OutcomeKind::Deferred {
                    next_attempt_at: next,
                },
            );
        }
    }
    let message = match ctx.composer.compose(plan, m, channel) {
        Ok(message) => message,
        Err(reason) => {
            tracing::error!("message {} of campaign {}: {reason}", m.id, plan.id);
            let kind = OutcomeKind::Failed {
                permanent: true,
                suppress: None,
            };
            return outcome("aviso", Some("template".into()), Some(reason), None, kind);
        }
    };
    let gate = ctx.gates.get(channel.name());
    let shared = ctx.shared.get(channel.name());
    let monotonic = || ctx.started.elapsed().as_secs_f64() * 1000.0;
    let _connection = match gate {
        Some(gate) => {
            let wait = match shared {
                Some(pace) => {
                    pace.wait_turn().await;
                    Duration::ZERO
                }
                None => gate.reserve(monotonic()),
            };
            // Even a zero sleep waits for the timer's next tick (up to 1 ms).
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            gate.connections().acquire().await.ok()
        }
        None => None,
    };
    if !ctx.is_running(plan.id) {
        // Paused or cancelled while this message waited: it goes back unsent.
        let now = ctx.clock.now_ms();
        return outcome(
            channel.name(),
            None,
            None,
            None,
            OutcomeKind::Deferred {
                next_attempt_at: now,
            },
        );
    }
    let segments = match &message {
        Outgoing::Sms(sms) => Some(sms.segments as i64),
        Outgoing::Email(_) => None,
    };
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(ctx.send_timeout, channel.send(&message)).await {
        Ok(result) => result,
        Err(_) => Err(DeliveryError::temporary(format!(
            "no answer within {} s",
            ctx.send_timeout.as_secs()
        ))),
    };
    match (&result, shared, gate) {
        (
            Err(DeliveryError::Temporary {
                throttle: true,
                retry_after,
                ..
            }),
            Some(pace),
            _,
        ) => pace.slow_down(*retry_after),
        (Ok(_), Some(pace), _) => pace.recovered(),
        (
            Err(DeliveryError::Temporary {
                throttle: true,
                retry_after,
                ..
            }),
            None,
            Some(gate),
        ) => {
            gate.slow_down(monotonic(), *retry_after);
            if let Ok(mut refused) = ctx.refused_at.lock() {
                refused.insert(channel.name().to_string(), wall_clock_ms());
            }
        }
        (Ok(_), None, Some(gate)) => gate.recovered(monotonic()),
        _ => {}
    }
    let latency_ms = Some(started.elapsed().as_millis() as i64);
    let attempts = (m.attempts + 1) as u32;
    let now = ctx.clock.now_ms();
    match result {
        Ok(accepted) => {
            tracing::debug!("message {} to {} sent", m.id, mask_address(&m.address));
            outcome(
                channel.name(),
                accepted.code,
                None,
                latency_ms,
                OutcomeKind::Sent {
                    provider_ref: accepted.provider_ref,
                    segments,
                },
            )
        }
        Err(DeliveryError::Temporary {
            code,
            reason,
            retry_after,
            ..
        }) => {
            if ctx.retry.exhausted(attempts) {
                tracing::info!(
                    "message {} to {}: giving up after {attempts} attempts: {reason}",
                    m.id,
                    mask_address(&m.address)
                );
                let reason = format!("gave up after {attempts} attempts: {reason}");
                let kind = OutcomeKind::Failed {
                    permanent: false,
                    suppress: None,
                };
                return outcome(channel.name(), code, Some(reason), latency_ms, kind);
            }
            let delay = ctx
                .retry
                .delay(attempts)
                .max(retry_after.unwrap_or_default());
            let next_attempt_at = now + delay.as_millis() as i64;
            outcome(
                channel.name(),
                code,
                Some(reason),
                latency_ms,
                OutcomeKind::Retry { next_attempt_at },
            )
        }
        Err(DeliveryError::Permanent {
            code,
            reason,
            suppress,
        }) => {
            tracing::info!(
                "message {} to {} failed permanently: {reason}",
                m.id,
                mask_address(&m.address)
            );
            let scope = match plan.channel {
                ChannelKind::Sms => SuppressionScope::Sms,
                ChannelKind::Email => SuppressionScope::Email,
            };
            let kind = OutcomeKind::Failed {
                permanent: true,
                suppress: suppress.map(|reason| (m.address.clone(), scope, reason)),
            };
            outcome(channel.name(), code, Some(reason), latency_ms, kind)
        }
    }
}

/// Milliseconds since the epoch from the system clock: the moments workers
/// on several hosts compare (NTP keeps them together), not the worker's
/// `Clock`, which tests may hold still.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
