//! Slow-downs of providers without a shared rate, passed between workers.

use std::collections::HashMap;

use super::send::SendContext;
use crate::store::{SlowDown, Store};

/// A provider without a configured rate is paced by each worker on its own
/// (it halves what it sends when told to slow down): the fleet slows down
/// together when every worker halves. A worker told by the provider reports the
/// time in `provider_state`; the others, seeing a newer time there, halve their
/// own pace as if told themselves. Only a provider's refusal is reported, never
/// a halving passed on, so a slow-down does not echo from worker to worker.
#[derive(Default)]
pub(super) struct SlowDowns {
    /// The latest report seen for each provider; none until the first read,
    /// so that refusals from before this worker started are not acted on.
    seen: Option<HashMap<String, i64>>,
    /// The times this worker reported itself.
    reported: HashMap<String, i64>,
}

impl SlowDowns {
    pub(super) async fn exchange(&mut self, store: &dyn Store, context: &SendContext) {
        let refused: Vec<(String, i64)> = match context.refused_at.lock() {
            Ok(mut refused) => refused.drain().collect(),
            Err(_) => Vec::new(),
        };
        for (name, at) in refused {
            match store.report_slow_down(&name, at).await {
                Ok(()) => {
                    self.reported.insert(name, at);
                }
                Err(e) => tracing::warn!("cannot tell the other workers to slow down {name}: {e}"),
            }
        }
        let reports = match store.slow_downs().await {
            Ok(reports) => reports,
            Err(e) => {
                tracing::warn!("cannot read the slow-downs of other workers: {e}");
                return;
            }
        };
        let first_read = self.seen.is_none();
        let seen = self.seen.get_or_insert_with(HashMap::new);
        for SlowDown {
            name,
            slowed_at: at,
        } in reports
        {
            let newer = seen.get(&name).is_none_or(|&before| at > before);
            seen.insert(name.clone(), at);
            if first_read || !newer || at == 0 || self.reported.get(&name) == Some(&at) {
                continue;
            }
            let own_pace = context
                .gates
                .get(&name)
                .filter(|_| !context.shared.contains_key(&name));
            if let Some(gate) = own_pace {
                tracing::info!("another worker was told to slow down {name}: slowing down too");
                gate.slow_down(context.started.elapsed().as_secs_f64() * 1000.0, None);
            }
        }
    }
}
