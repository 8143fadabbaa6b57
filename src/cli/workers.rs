use std::process::ExitCode;

use clap::Args;

use super::{print, print_json, thousands, Context};
use crate::dispatch::workers_status;
use crate::store::WorkerHealth;

#[derive(Debug, Args)]
pub struct WorkersArgs {
    /// Print the list as JSON (fields documented in README.md)
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(ctx: &Context, args: WorkersArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let workers = workers_status(store.as_ref(), ctx.settings.zone, ctx.now_ms()).await?;
    if args.json {
        print_json(&workers)?;
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        print("no worker is running: start one with `aviso worker`");
        return Ok(ExitCode::SUCCESS);
    }
    print(&format!(
        "{:<6} {:<25} {:<25} {:<38} {:>6}  campaigns",
        "state", "host:pid", "started", "last heartbeat", "leased"
    ));
    for w in &workers {
        let state = match w.state {
            WorkerHealth::Live => "live",
            WorkerHealth::Lost => "LOST",
        };
        let campaigns = w
            .campaigns
            .iter()
            .map(|c| format!("{}: {}", c.campaign_id, thousands(c.leased)))
            .collect::<Vec<_>>()
            .join(", ");
        print(&format!(
            "{state:<6} {:<25} {:<25} {:<38} {:>6}  {campaigns}",
            format!("{}:{}", w.host, w.pid),
            w.started_at,
            format!("{} ({} s ago)", w.last_heartbeat_at, w.silent_seconds),
            thousands(w.leased),
        ));
    }
    Ok(ExitCode::SUCCESS)
}
