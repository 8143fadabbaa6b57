use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;

use super::{print, print_json, thousands, Context};
use crate::dispatch::{DispatchOptions, RECORD_BATCH};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Send what is due now, then exit (for tests and cron)
    #[arg(long)]
    pub once: bool,
    /// Messages prepared or sent at once [default: 32, or [worker] concurrency]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Threads that render and send. One sends thousands of messages a second
    /// and spares the CPU that a gateway on the same host needs (threads
    /// waking each other cost more than they add); raise it only if the worker
    /// keeps a core at 100%
    #[arg(long, env = "AVISO_WORKER_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// How long a claim holds before another worker may take over, e.g. 60s, 2m
    #[arg(long, value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// Print the final report as JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 60s, 2m, 1h)"))
}

pub async fn run(ctx: &Context, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let mut options = DispatchOptions::new(crate::dispatch::worker_id());
    let configured = &ctx.config.file.worker;
    options.concurrency = args
        .concurrency
        .or(configured.concurrency)
        .unwrap_or(32)
        .max(1);
    options.lease = args
        .lease
        .or(configured.lease_seconds.map(Duration::from_secs))
        .unwrap_or(options.lease);
    options.batch = RECORD_BATCH;
    let dispatcher = ctx.dispatcher(store, options).await?;
    tracing::info!(
        "worker {} started: concurrency {}, lease {} s",
        dispatcher.options.worker_id,
        dispatcher.options.concurrency,
        dispatcher.options.lease.as_secs()
    );
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        super::wait_for_signal().await;
        tracing::info!("stopping: finishing the sends in flight, releasing the rest");
        let _ = stop.send(true);
        // Keep the sender alive so the worker sees the value.
        std::future::pending::<()>().await;
    });
    let report = dispatcher.run(args.once, shutdown).await?;
    if args.json {
        print_json(&report)?;
    } else {
        print(&format!(
            "worker done: {} sent, {} to retry, {} failed, {} deferred, {} expired, {} released",
            thousands(report.sent as i64),
            thousands(report.retrying as i64),
            thousands(report.failed as i64),
            thousands(report.deferred as i64),
            thousands(report.expired as i64),
            thousands(report.released as i64)
        ));
    }
    Ok(ExitCode::SUCCESS)
}
