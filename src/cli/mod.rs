//! The command line: parse options, call the library, print. One file per
//! command group; no business logic here.

mod activity;
mod calls;
mod campaign;
mod contacts;
mod context;
mod demo;
mod estimate;
mod init;
mod output;
mod report;
mod serve;
mod store;
mod suppress;
mod templates;
mod worker;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{Config, DEFAULT_CONFIG, DEFAULT_DATABASE_URL};
pub use crate::report::thousands;
use crate::settings::{Env, Overrides, Settings};
pub use context::{wait_for_signal, Context};
pub use output::{one_line, print, print_json};
pub use worker::schedule_as_batch_job;

const ABOUT: &str = "Bulk e-mail and SMS for the promotion of the vote from abroad.";

fn long_about() -> String {
    format!(
        "\
aviso sends registration and voting reminders by SMS and e-mail to citizens living \
abroad, and the monthly information packet to migrant organisations, and reports \
every send against the work programme's totals.

Start here:
  aviso demo                                  the whole job on a sample, no servers needed
  aviso contacts import export.csv --list registro
  aviso contacts count --list registro --segment 'entity=OAX channel=sms'

Settings come from ./{DEFAULT_CONFIG} (or --config FILE); the database defaults to \
{DEFAULT_DATABASE_URL} in the current directory."
    )
}

#[derive(Debug, Parser)]
#[command(name = "aviso", version, about = ABOUT, long_about = long_about())]
pub struct Cli {
    #[arg(long, global = true, env = "AVISO_CONFIG", value_name = "FILE",
          help = format!("Configuration file [default: ./{DEFAULT_CONFIG} if present]"))]
    pub config: Option<PathBuf>,

    #[arg(long, global = true, env = "AVISO_DATABASE_URL", value_name = "URL",
          help = format!("Database: sqlite://FILE or postgres://USER@HOST/DB [default: {DEFAULT_DATABASE_URL}]"))]
    pub database_url: Option<String>,

    /// Templates directory [default: ./templates if present, else the built-in templates]
    #[arg(long, global = true, env = "AVISO_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole job on a sample, with no servers: SQLite and file transports
    Demo(demo::DemoArgs),
    /// Write an aviso.toml with every setting explained, and create the database
    Init(init::InitArgs),
    /// Import, count and inspect contacts
    #[command(subcommand)]
    Contacts(contacts::ContactsCommand),
    /// Addresses that must never be messaged again
    #[command(subcommand)]
    Suppress(suppress::SuppressCommand),
    /// Lines of the work programme and their programmed totals
    #[command(subcommand)]
    Activity(activity::ActivityCommand),
    /// Create, start, pause, resume, cancel and follow campaigns
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
    /// Send queued messages (run several, on several hosts, with PostgreSQL)
    Worker(worker::WorkerArgs),
    /// The workers sharing this database: live or lost, and what each holds.
    ///
    /// Lists where each worker runs, since when, when it last reported in (every
    /// 5 s), and the messages it holds leased now, by campaign. A worker silent
    /// for longer than its lease is `lost` (killed, or its host is gone): the
    /// messages it held go back to the queue as their leases expire, and other
    /// workers send them. A worker stopped cleanly (SIGTERM) leaves the list; a
    /// lost one stays for a day.
    ///
    /// Example: aviso workers --json
    Workers(workers::WorkersArgs),
    /// The call centre: who to call after a campaign, and the calls' results
    #[command(subcommand)]
    Calls(calls::CallsCommand),
    /// Indicators against the programme, and the message ledger
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Receive delivery reports, bounces, unsubscribes and citizens' SMS replies
    /// (BAJA / ALTA); /healthz and /metrics
    ///
    /// Citizens' replies come from Kannel's sms-service (GET
    /// /inbound/kannel?from=%p&text=%a&coding=%c) or as JSON (POST /inbound/sms),
    /// both with AVISO_RECEIPTS_SECRET; each is confirmed by SMS through
    /// AVISO_SMS_PROVIDER. See docs/RECEIPTS.md.
    ///
    /// Example: AVISO_RECEIPTS_SECRET=… aviso serve --listen 127.0.0.1:8025
    Serve(serve::ServeArgs),
    /// Check and preview the bilingual message templates
    #[command(subcommand)]
    Templates(templates::TemplatesCommand),
    /// How a text travels as SMS: encoding, length, segments
    SmsInfo(templates::SmsInfoArgs),
    /// Copy the database into another (SQLite to PostgreSQL, or back), verified table by table
    #[command(long_about = store::MIGRATE_ABOUT)]
    MigrateStore(store::MigrateStoreArgs),
    /// A consistent copy of the SQLite database, taken while workers send
    #[command(long_about = store::BACKUP_ABOUT)]
    Backup(store::BackupArgs),
}

impl Cli {
    /// The async runtime's threads: `aviso worker --threads`; one per core for
    /// the other commands.
    pub fn runtime_threads(&self) -> Option<usize> {
        match &self.command {
            Command::Worker(args) => Some(usize::from(args.threads)),
            _ => None,
        }
    }

    /// Whether the process is a throughput job for the kernel's scheduler
    /// (`aviso worker`), to be declared before the runtime starts its threads.
    pub fn is_batch_job(&self) -> bool {
        matches!(&self.command, Command::Worker(args) if args.scheduling == worker::Scheduling::Batch)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli {
        config,
        database_url,
        templates,
        command,
    } = cli;
    // The demo makes its own workspace and ignores any local aviso.toml.
    if let Command::Demo(args) = command {
        return demo::run(args).await;
    }
    if let Command::Init(args) = command {
        let path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        return init::run(&path, args).await;
    }
    let (concurrency, lease) = match &command {
        Command::Worker(args) => (args.concurrency, args.lease),
        _ => (None, None),
    };
    let overrides = Overrides {
        database_url,
        templates,
        concurrency,
        lease,
    };
    let ctx = Context {
        settings: Settings::resolve(Config::load(config.as_deref())?, Env::process(), overrides)?,
        clock: Arc::new(SystemClock),
    };
    match command {
        Command::Demo(_) | Command::Init(_) => Ok(ExitCode::SUCCESS),
        Command::Contacts(cmd) => contacts::run(&ctx, cmd).await,
        Command::Suppress(cmd) => suppress::run(&ctx, cmd).await,
        Command::Templates(cmd) => templates::run(&ctx, cmd).await,
        Command::SmsInfo(args) => templates::sms_info(args),
        Command::Activity(cmd) => activity::run(&ctx, cmd).await,
        Command::Campaign(cmd) => campaign::run(&ctx, cmd).await,
        Command::Worker(args) => worker::run(&ctx, args).await,
        Command::Workers(args) => workers::run(&ctx, args).await,
        Command::Serve(args) => serve::run(&ctx, args).await,
        Command::Report(cmd) => report::run(&ctx, cmd).await,
        Command::MigrateStore(args) => store::migrate_store(&ctx, args).await,
        Command::Backup(args) => store::run_backup(&ctx, args).await,
        Command::Calls(cmd) => calls::run(&ctx, cmd).await,
    }
}

/// Logs go to stderr; `AVISO_LOG` (e.g. `debug`, `aviso=trace`) changes the level.
pub fn init_logging(cli: &Cli) {
    // The demo prints its own story; workers and servers log what they do.
    let default = match cli.command {
        Command::Demo(_) => "warn",
        _ => "warn,aviso=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AVISO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}
