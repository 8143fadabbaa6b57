//! The worker: claim due messages with a lease, commit, render and send outside
//! any transaction, and record each outcome only while the lease still holds.
//!
//! At most `concurrency` sends are in flight, and at most [`RECORD_BATCH`]
//! outcomes wait for their commit (senders wait beyond that). A worker killed
//! at any moment therefore loses nothing: messages it had claimed come back
//! when their lease expires, and only those handed to a provider whose outcome
//! was not yet committed can be sent twice: never more than
//! `concurrency + RECORD_BATCH`, however slow the database.

mod compose;
mod fleet;
mod queue;
pub mod rate;
mod recorder;
pub mod retry;
mod send;
mod shared_pace;
mod slow_downs;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use crate::store::RECORD_BATCH;
pub use compose::{email_bytes, message_id, recipient_of, reference, CampaignPlan, Composer};
pub use fleet::{workers_status, CampaignLeases, WorkerStatus};
use recorder::Recorder;
pub use recorder::WorkerReport;
pub use retry::RetryPolicy;

use crate::campaigns::{CampaignState, ClaimedMessage, Transition};
use crate::channels::Channel;
use crate::clock::Clock;
use crate::config::{
    DEFAULT_AUTOPAUSE_RATIO, DEFAULT_AUTOPAUSE_WINDOW, DEFAULT_CONCURRENCY, DEFAULT_GRACE_HOURS,
    DEFAULT_LEASE_SECONDS, DEFAULT_ZONE,
};
use crate::domain::ChannelKind;
use crate::schedule::{ScheduleSettings, Window};
use crate::store::{RecentFailures, Store, StoreError};
use queue::{Queue, QueueState};
use rate::ProviderGate;
use send::{sender, stopped, Claimed, SendContext};
use shared_pace::SharedPace;
use slow_downs::SlowDowns;

#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// Names this worker in leases and attempt records.
    pub worker_id: String,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim holds before another worker may take the message over.
    pub lease: Duration,
    /// Messages claimed per statement.
    pub batch: usize,
    /// How often an idle worker looks for due work.
    pub poll: Duration,
    /// A send that takes longer than this counts as a temporary failure.
    pub send_timeout: Duration,
    pub retry: RetryPolicy,
    /// When runs are due, and how late is too late.
    pub schedule: ScheduleSettings,
    /// The send window of campaigns that set none.
    pub default_window: Option<Window>,
    /// A campaign pauses itself when more than `ratio` of its last `window`
    /// attempts failed for good.
    pub autopause: AutoPause,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoPause {
    pub window: i64,
    pub ratio: f64,
}

impl Default for AutoPause {
    fn default() -> Self {
        AutoPause {
            window: DEFAULT_AUTOPAUSE_WINDOW,
            ratio: DEFAULT_AUTOPAUSE_RATIO,
        }
    }
}

impl DispatchOptions {
    pub fn new(worker_id: String) -> DispatchOptions {
        DispatchOptions {
            worker_id,
            concurrency: DEFAULT_CONCURRENCY,
            lease: Duration::from_secs(DEFAULT_LEASE_SECONDS),
            batch: RECORD_BATCH,
            poll: Duration::from_millis(500),
            send_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            schedule: ScheduleSettings {
                zone: DEFAULT_ZONE,
                grace_ms: crate::config::hours_ms(DEFAULT_GRACE_HOURS),
                budget: None,
            },
            default_window: None,
            autopause: AutoPause::default(),
        }
    }
}

/// A worker id that is unique across hosts and restarts.
pub fn worker_id() -> String {
    format!(
        "{}:{}:{:04x}",
        fleet::hostname(),
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The providers a worker can use: one default per channel, and named ones.
#[derive(Default, Clone)]
pub struct ChannelSet {
    pub email: Option<Arc<dyn Channel>>,
    pub sms: Option<Arc<dyn Channel>>,
    pub named: HashMap<String, Arc<dyn Channel>>,
}

impl ChannelSet {
    fn all(&self) -> impl Iterator<Item = &Arc<dyn Channel>> {
        self.email
            .iter()
            .chain(self.sms.iter())
            .chain(self.named.values())
    }

    /// A pacing gate per provider: its rate and connection cap.
    fn gates(&self) -> HashMap<String, Arc<ProviderGate>> {
        self.all()
            .map(|c| {
                (
                    c.name().to_string(),
                    Arc::new(ProviderGate::new(c.info().rate, c.info().connections)),
                )
            })
            .collect()
    }

    /// The pace every worker shares, for each provider with a configured rate.
    fn shared_paces(&self, store: &Arc<dyn Store>) -> HashMap<String, Arc<SharedPace>> {
        self.all()
            .filter_map(|c| {
                let rate = c.info().rate?;
                let pace = SharedPace::new(c.name(), rate, store.clone());
                Some((c.name().to_string(), Arc::new(pace)))
            })
            .collect()
    }

    pub fn for_plan(&self, plan: &CampaignPlan) -> Option<Arc<dyn Channel>> {
        match &plan.provider {
            Some(name) => self.named.get(name).cloned(),
            None => match plan.channel {
                ChannelKind::Email => self.email.clone(),
                ChannelKind::Sms => self.sms.clone(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub composer: Arc<Composer>,
    pub channels: ChannelSet,
    pub clock: Arc<dyn Clock>,
    pub options: DispatchOptions,
}

impl Dispatcher {
    /// Works until `shutdown` turns true, or, with `until_idle`, until nothing
    /// is due (`aviso worker --once`). In-flight sends are always finished and
    /// recorded before returning; claimed messages not yet sent are released.
    pub async fn run(
        &self,
        until_idle: bool,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<WorkerReport, DispatchError> {
        let opts = &self.options;
        let recorder = Recorder::spawn(
            self.store.clone(),
            opts.worker_id.clone(),
            self.clock.clone(),
        );
        let me = fleet::this_worker(&opts.worker_id, opts.lease, self.clock.now_ms());
        self.store.register_worker(&me, self.clock.now_ms()).await?;
        let heartbeat =
            fleet::spawn_heartbeat(self.store.clone(), self.clock.clone(), me, opts.lease);
        let context = Arc::new(SendContext {
            composer: self.composer.clone(),
            clock: self.clock.clone(),
            retry: opts.retry.clone(),
            send_timeout: opts.send_timeout,
            gates: self.channels.gates(),
            shared: self.channels.shared_paces(&self.store),
            refused_at: std::sync::Mutex::default(),
            started: std::time::Instant::now(),
            zone: opts.schedule.zone,
            running: std::sync::RwLock::new(self.running_campaigns().await?),
        });
        let watcher = self.spawn_state_watcher(context.clone());
        // `concurrency` senders take claimed messages from one queue: sending a
        // message wakes nobody while the queue has more, where a task per
        // message would wake this loop every time one finished.
        let (queue, waiting) = flume::unbounded::<Claimed>();
        let queue = Queue {
            tx: queue,
            rx: waiting,
            state: Arc::new(QueueState::default()),
            // Enough left for the senders while the next batch is claimed.
            low_water: opts.concurrency.max(opts.batch / 2).max(1),
        };
        let mut senders = JoinSet::new();
        for _ in 0..opts.concurrency.max(1) {
            senders.spawn(sender(
                queue.rx.clone(),
                queue.state.clone(),
                queue.low_water,
                context.clone(),
                recorder.sender(),
                shutdown.clone(),
            ));
        }
        let mut plans: HashMap<i64, Arc<CampaignPlan>> = HashMap::new();
        let mut unusable: HashSet<i64> = HashSet::new();
        let mut idle_checked = false;
        let mut last_housekeeping: Option<i64> = None;
        let mut ahead: Vec<Claimed> = Vec::new();

        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = self.clock.now_ms();
            if idle_checked || last_housekeeping.is_none_or(|at| now - at >= 1000) {
                self.store.housekeeping(now).await?;
                crate::schedule::tick(self.store.as_ref(), &opts.schedule, now).await?;
                self.auto_pause(now).await?;
                last_housekeeping = Some(now);
            }
            let claimed = match ahead.is_empty() {
                true => self.claim_due(&mut plans, &mut unusable, now).await?,
                false => std::mem::take(&mut ahead),
            };
            if claimed.is_empty() {
                if queue.state.is_idle() {
                    recorder.flush().await;
                    if until_idle {
                        if idle_checked {
                            break;
                        }
                        // Outcomes just committed may have finished runs:
                        // one more round with housekeeping before stopping.
                        idle_checked = true;
                        continue;
                    }
                }
                tokio::select! {
                    _ = stopped(&mut shutdown) => {}
                    _ = queue.state.settled.notified(), if !queue.state.is_idle() => {}
                    _ = tokio::time::sleep(opts.poll) => {}
                }
                continue;
            }
            idle_checked = false;
            for message in claimed {
                queue.state.added();
                // Cannot fail: a receiver is kept below.
                let _ = queue.tx.send(message);
            }
            // The next batch is claimed while this one is sent, once the queue
            // is short enough that it will not wait long (or on a lease).
            let claim_next = async {
                queue.drained_to_low_water(&mut shutdown.clone()).await;
                if *shutdown.borrow() {
                    return Ok(Vec::new());
                }
                self.claim_due(&mut plans, &mut unusable, now).await
            };
            ahead = claim_next.await?;
        }
        // Claimed but never handed to a provider: back to the queue at once.
        let mut unsent: Vec<i64> = ahead.iter().map(|(_, _, m)| m.id).collect();
        unsent.extend(queue.rx.drain().map(|(_, _, m)| m.id));
        drop(queue);
        while let Some(done) = senders.join_next().await {
            match done {
                Ok(ids) => unsent.extend(ids),
                Err(e) => tracing::error!("a sender failed: {e}"),
            }
        }
        let released = match unsent.is_empty() {
            true => 0,
            false => {
                self.store
                    .release(&opts.worker_id, &unsent, self.clock.now_ms())
                    .await?
            }
        };
        let mut report = recorder.close().await;
        heartbeat.abort();
        watcher.abort();
        self.store.housekeeping(self.clock.now_ms()).await?;
        self.store.deregister_worker(&opts.worker_id).await?;
        report.released = released;
        report.language_fallbacks = self
            .composer
            .fallbacks
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        if report.language_fallbacks > 0 {
            tracing::info!(
                "{} message(s) went in Spanish: their template has no version in the contact's language",
                report.language_fallbacks
            );
        }
        Ok(report)
    }

    /// Claims due messages across running campaigns, up to one batch.
    async fn claim_due(
        &self,
        plans: &mut HashMap<i64, Arc<CampaignPlan>>,
        unusable: &mut HashSet<i64>,
        now: i64,
    ) -> Result<Vec<Claimed>, DispatchError> {
        let opts = &self.options;
        let mut claimed = Vec::new();
        let running = self.store.campaigns_in(&[CampaignState::Running]).await?;
        for campaign in &running {
            if claimed.len() >= opts.batch {
                break;
            }
            if unusable.contains(&campaign.id) {
                continue;
            }
            let plan = match plans.get(&campaign.id) {
                Some(plan) => plan.clone(),
                None => match CampaignPlan::prepare(campaign, opts.default_window) {
                    Ok(mut plan) => {
                        plan.cap = self.store.frequency_cap(campaign.id).await?;
                        let plan = Arc::new(plan);
                        plans.insert(campaign.id, plan.clone());
                        plan
                    }
                    Err(reason) => {
                        let reason = format!("cannot prepare the campaign: {reason}");
                        tracing::error!("campaign {}: {reason}; pausing it", campaign.id);
                        self.store
                            .set_campaign_state(
                                campaign.id,
                                Transition::AutoPause.from_states(),
                                CampaignState::Paused,
                                Some(&reason),
                                now,
                            )
                            .await?;
                        continue;
                    }
                },
            };
            let Some(channel) = self.channels.for_plan(&plan) else {
                tracing::warn!(
                    "campaign {} needs a {} provider{} that this worker does not have; leaving it to other workers",
                    campaign.id,
                    plan.channel,
                    plan.provider.as_deref().map(|p| format!(" ({p})")).unwrap_or_default()
                );
                unusable.insert(campaign.id);
                continue;
            };
            let limit = (opts.batch - claimed.len()) as i64;
            let lease_ms = opts.lease.as_millis() as i64;
            let messages = match &plan.cap {
                None => {
                    self.store
                        .claim(campaign.id, &opts.worker_id, now, lease_ms, limit)
                        .await?
                }
                Some(policy) => self.claim_capped(campaign.id, policy, now, limit).await?,
            };
            for m in messages {
                claimed.push((plan.clone(), channel.clone(), m));
            }
        }
        Ok(claimed)
    }

    /// Claims for a capped campaign until some message fits its cap or none
    /// is due: a batch the cap held whole is not the end of the campaign.
    /// Each round takes its messages out of the due ones, so this ends.
    async fn claim_capped(
        &self,
        campaign_id: i64,
        policy: &crate::domain::CapPolicy,
        now: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedMessage>, DispatchError> {
        let opts = &self.options;
        let lease_ms = opts.lease.as_millis() as i64;
        loop {
            let round = self
                .store
                .claim_capped(campaign_id, &opts.worker_id, now, lease_ms, limit, policy)
                .await?;
            if round.held + round.deferred > 0 {
                tracing::info!(
                    "campaign {campaign_id}: frequency cap {}: {} message(s) held, {} deferred",
                    policy.cap,
                    round.held,
                    round.deferred
                );
            }
            if !round.claimed.is_empty() || round.held + round.deferred == 0 {
                return Ok(round.claimed);
            }
        }
    }

    /// Pauses running campaigns whose recent attempts mostly failed for good: a
    /// broken provider or a wrong template must not burn a whole list. Only
    /// attempts since the campaign last changed state count: the failures
    /// that paused it must not pause it again the moment it is resumed, nor
    /// those of last month's run the next.
    async fn auto_pause(&self, now: i64) -> Result<(), DispatchError> {
        let AutoPause { window, ratio } = self.options.autopause;
        for campaign in self.store.campaigns_in(&[CampaignState::Running]).await? {
            let id = campaign.id;
            let RecentFailures { failed, last, .. } = self
                .store
                .recent_failures(id, campaign.updated_at, window)
                .await?;
            if failed as f64 > ratio * window as f64 {
                let reason = format!(
                    "paused automatically: {failed} of the last {window} attempts failed (last: {}); fix the cause, then `aviso campaign resume {id}`",
                    last.unwrap_or_default()
                );
                if self
                    .store
                    .set_campaign_state(
                        id,
                        Transition::AutoPause.from_states(),
                        CampaignState::Paused,
                        Some(&reason),
                        now,
                    )
                    .await?
                {
                    tracing::warn!("campaign {id} {reason}");
                }
            }
        }
        Ok(())
    }

    async fn running_campaigns(&self) -> Result<HashSet<i64>, DispatchError> {
        Ok(self
            .store
            .campaigns_in(&[CampaignState::Running])
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// Follows pauses and cancellations while messages wait for their turn,
    /// publishes each provider's pace for `campaign status`, and passes on
    /// slow-downs of providers without a shared rate.
    fn spawn_state_watcher(&self, context: Arc<SendContext>) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let mut published: HashMap<String, (Option<f64>, i64)> = HashMap::new();
            let mut slow_downs = SlowDowns::default();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                slow_downs.exchange(store.as_ref(), &context).await;
                match store.campaigns_in(&[CampaignState::Running]).await {
                    Ok(running) => {
                        let running = running.into_iter().map(|c| c.id).collect();
                        if let Ok(mut set) = context.running.write() {
                            *set = running;
                        }
                    }
                    Err(e) => tracing::warn!("cannot read campaign states: {e}"),
                }
                let now = clock.now_ms();
                // A shared pace is written by the workers as they take slots.
                let own = context
                    .gates
                    .iter()
                    .filter(|(name, _)| !context.shared.contains_key(*name));
                for (name, gate) in own {
                    let pace = gate.report();
                    let stale = published
                        .get(name)
                        .is_none_or(|(rate, at)| *rate != pace.current || now - at > 10_000);
                    if !stale {
                        continue;
                    }
                    let state = crate::store::ProviderState {
                        name: name.clone(),
                        rate: pace.current.unwrap_or(0.0),
                        base_rate: pace.ceiling.unwrap_or(0.0),
                        reason: (pace.current != pace.ceiling)
                            .then(|| crate::store::SLOWED_REASON.to_string()),
                        updated_at: now,
                    };
                    match store.save_provider_state(&state).await {
                        Ok(()) => {
                            published.insert(name.clone(), (pace.current, now));
                        }
                        Err(e) => tracing::warn!("cannot save the pace of {name}: {e}"),
                    }
                }
            }
        })
    }
}
