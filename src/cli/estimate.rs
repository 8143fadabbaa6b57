//! `aviso campaign estimate`, and the estimate `campaign create` prints.

use super::{print, thousands, Context};
use crate::cost::{CostLine, Estimate, Money};
use crate::store::Store;

/// The estimate of a campaign's next run, with the prices of aviso.toml.
pub(super) async fn of(ctx: &Context, store: &dyn Store, id: i64) -> anyhow::Result<Estimate> {
    let campaign = store
        .campaign(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("campaign {id} does not exist"))?;
    let prices = ctx.settings.prices.as_deref();
    Ok(crate::cost::estimate(store, &ctx.renderer()?, &campaign, prices).await?)
}

fn money(cost: Option<Money>, unpriced: i64) -> String {
    match (cost, unpriced) {
        (None, _) => "no price".into(),
        (Some(cost), 0) => cost.to_string(),
        (Some(cost), n) => format!("{cost} + {} without price", thousands(n)),
    }
}

fn lines(title: &str, lines: &[CostLine]) {
    print(&format!(
        "  {title:<8} {:>10} {:>10}  COST",
        "RECIPIENTS", "SEGMENTS"
    ));
    for l in lines {
        print(&format!(
            "  {:<8} {:>10} {:>10}  {}",
            l.key,
            thousands(l.recipients),
            thousands(l.segments),
            money(l.cost, l.unpriced)
        ));
    }
}

pub(super) fn print_estimate(e: &Estimate) {
    let currency = e.currency.as_deref().unwrap_or("");
    let cost = match e.cost {
        Some(cost) => format!("{cost} {currency}"),
        None => "no prices configured ([prices] in aviso.toml)".into(),
    };
    print(&format!(
        "estimate for campaign {} ({}): {} recipients, {} SMS segments, cost {cost}",
        e.campaign,
        e.channel,
        thousands(e.recipients),
        thousands(e.segments)
    ));
    print(&format!(
        "  of {} in the list and segment: {} without a {} address, {} suppressed",
        thousands(e.audience),
        thousands(e.no_address),
        e.channel,
        thousands(e.suppressed)
    ));
    if !e.no_price.is_empty() && e.cost.is_some() {
        print(&format!(
            "  no price for {}: {} recipients are not in the cost",
            e.no_price.join(", "),
            thousands(e.unpriced)
        ));
    }
    for l in &e.by_encoding {
        print(&format!(
            "  {} {}: {} messages, {} segments",
            l.language,
            l.encoding,
            thousands(l.messages),
            thousands(l.segments)
        ));
    }
    lines("COUNTRY", &e.by_country);
    lines("ENTITY", &e.by_entity);
    if let Some(budget) = e.budget {
        let verdict = match e.check_budget() {
            Ok(()) => "within it",
            Err(_) => "OVER it: `campaign start` will refuse this run",
        };
        print(&format!("  budget {budget} {currency}: {verdict}"));
    }
}
