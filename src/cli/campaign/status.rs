//! `campaign status`: one campaign's counts in words, and a live progress bar.

use std::time::Duration;

use super::super::{print, thousands, Context};
use crate::campaigns::manage::{self, CampaignStatus};
use crate::campaigns::CampaignState;

pub(super) fn print_status(s: &CampaignStatus) {
    print(&format!(
        "campaign {} {:?} ({}, {}, template {}): {}{}",
        s.id,
        s.name,
        s.activity,
        s.channel,
        s.template,
        s.state,
        s.pause_reason
            .as_deref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    ));
    let c = &s.counts;
    print(&format!(
        "  total {}: queued {}, sending {}, sent {}, delivered {}, retrying {}, failed {}, suppressed {}, expired {}, cancelled {}, capped {}",
        thousands(s.total),
        thousands(c.queued),
        thousands(c.sending),
        thousands(c.sent),
        thousands(c.delivered),
        thousands(c.retrying),
        thousands(c.failed),
        thousands(c.suppressed),
        thousands(c.expired),
        thousands(c.cancelled),
        thousands(c.capped)
    ));
    if let (Some(cap), Some(when)) = (&s.frequency_cap, &s.when_capped) {
        print(&format!(
            "  frequency cap {cap} per recipient across campaigns; over it: {when}"
        ));
    }
    if s.no_address > 0 {
        print(&format!(
            "  {} contacts have no {} address",
            thousands(s.no_address),
            s.channel
        ));
    }
}

/// A live progress bar until nothing is left to send.
pub(super) async fn watch(
    ctx: &Context,
    store: &dyn crate::store::Store,
    id: i64,
) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("campaign {id}"));
    loop {
        let s = manage::status_of(store, id, ctx.settings.zone, ctx.now_ms()).await?;
        let c = &s.counts;
        bar.set_length(s.total as u64);
        bar.set_position((s.total - c.pending()) as u64);
        bar.set_message(format!(
            "{} · sent {} · failed {} · retrying {}",
            s.state,
            c.sent + c.delivered,
            c.failed,
            c.retrying
        ));
        if c.pending() == 0
            || matches!(
                s.state,
                CampaignState::Draft | CampaignState::Paused | CampaignState::Cancelled
            )
        {
            bar.finish();
            print_status(&s);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
