use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;

use super::{print, print_json, thousands, Context};
use crate::config::DEFAULT_CONCURRENCY;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Send what is due now, then exit (for tests and cron)
    #[arg(long)]
    pub once: bool,
    #[arg(long, help = format!(
        "Messages prepared or sent at once [default: {DEFAULT_CONCURRENCY}, or [worker] concurrency]"
    ))]
    pub concurrency: Option<usize>,
    /// Threads that render and send. One sends thousands of messages a second
    /// and spares the CPU that a gateway on the same host needs (threads
    /// waking each other cost more than they add); raise it only if the worker
    /// keeps a core at 100%
    #[arg(long, env = "AVISO_WORKER_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Niceness added to the worker's bookkeeping, 0-19: claiming messages,
    /// and with SQLite its database thread. The threads that talk to gateways
    /// keep the process's priority, so a gateway on the same host gets the CPU
    /// first. On a host busy with other work, SQLite's transactions then take
    /// longer, and `aviso serve` may wait on them; 0 runs all alike (Linux)
    #[arg(long, env = "AVISO_WORKER_DB_NICE", default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u8).range(0..=19))]
    pub db_nice: u8,
    /// How the kernel schedules the worker. `batch` declares it a throughput
    /// job: a gateway's reply that wakes the worker waits for the worker's
    /// turn instead of interrupting the program running, so each turn handles
    /// several replies. With Kannel on the same two cores, the worker switched
    /// threads half as often and used a tenth less CPU a message. `normal`
    /// reacts within microseconds rather than milliseconds (Linux)
    #[arg(long, env = "AVISO_WORKER_SCHEDULING", value_enum, default_value_t = Scheduling::Batch)]
    pub scheduling: Scheduling,
    /// How long a claim holds before another worker may take over, e.g. 60s, 2m
    #[arg(long, value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// Print the final report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduling {
    Batch,
    Normal,
}

/// Puts the calling thread, and the threads it starts from now on, under
/// Linux's batch scheduling policy (SCHED_BATCH). Called before the runtime
/// starts its threads, so that every thread of the worker is under it. The
/// thread's nice value is kept.
#[cfg(target_os = "linux")]
pub fn schedule_as_batch_job() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain system call on the calling thread (0) that reads `param`
    // during the call only. (The thread-priority crate would also reset the
    // thread's nice value.)
    let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if status != 0 {
        tracing::debug!(
            "the worker keeps the normal scheduling policy: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn schedule_as_batch_job() {}

/// Adds `nice` to the niceness of the calling thread and of the threads it
/// starts from now on. On a gateway's own host, the worker's database work
/// competing at equal priority delayed the gateway's answers: SMS through
/// Kannel on two cores went about 7 % faster with it niced, e-mail through
/// smtp-sink 9 % (see docs/BENCHMARKS.md). When a core is free it runs at
/// once all the same.
#[cfg(target_os = "linux")]
fn lower_this_threads_priority(nice: u8) {
    use rustix::process::{getpriority_process, setpriority_process};
    if nice == 0 {
        return;
    }
    // Linux keeps a nice value per thread, and this is the thread's id.
    let thread = Some(rustix::thread::gettid());
    let lowered = getpriority_process(thread)
        .and_then(|current| setpriority_process(thread, (current + i32::from(nice)).min(19)));
    if let Err(e) = lowered {
        tracing::debug!("the database work keeps its priority: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority(_nice: u8) {}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 60s, 2m, 1h)"))
}

pub(super) async fn run(ctx: &Context, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    // Before the store starts its thread, which inherits this one's priority;
    // the runtime's threads, which send, were started before. (Threads this
    // one starts later inherit it too; a connection sqlx reopened from a
    // runtime thread would not, which costs speed, nothing else.)
    lower_this_threads_priority(args.db_nice);
    let store = ctx.store().await?;
    let dispatcher = ctx.dispatcher(store).await?;
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
