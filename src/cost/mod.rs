//! What sending costs: the price table of aviso.toml, the estimate of a run
//! before it starts, and the cost of what was sent.

mod estimate;
mod prices;

pub use estimate::{estimate, CostError, CostLine, EncodingLine, Estimate};
pub use prices::{ChannelPrices, Currency, Money, PriceError, PriceTable};

use std::sync::Arc;

use crate::campaigns::Campaign;
use crate::store::Store;
use crate::templates::Renderer;

/// Refuses to start a run whose estimate is over its budget: the campaign's
/// own (`campaign create --budget`), else `budget` in `[prices]`.
#[derive(Clone)]
pub struct BudgetGuard {
    pub prices: Option<Arc<PriceTable>>,
    pub renderer: Arc<Renderer>,
}

impl std::fmt::Debug for BudgetGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetGuard")
            .field("prices", &self.prices)
            .finish_non_exhaustive()
    }
}

impl BudgetGuard {
    /// Estimates only campaigns that have a budget: the others start at once.
    pub async fn check(&self, store: &dyn Store, campaign: &Campaign) -> Result<(), CostError> {
        let table_budget = self.prices.as_ref().and_then(|p| p.budget);
        if campaign.budget_micros.is_none() && table_budget.is_none() {
            return Ok(());
        }
        estimate(store, &self.renderer, campaign, self.prices.as_deref())
            .await?
            .check_budget()
    }
}
