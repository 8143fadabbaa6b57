//! The command line: parse options, call the library, print. One file per
//! command group; no business logic here.

mod contacts;
mod suppress;
mod templates;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DEFAULT_FROM};
use crate::store::Store;
use crate::templates::{EmailSettings, TemplateSet, DEFAULT_ATTACHMENT_LIMIT};

const ABOUT: &str = "Bulk e-mail and SMS for the promotion of the vote from abroad.";

const LONG_ABOUT: &str = "\
aviso sends registration and voting reminders by SMS and e-mail to citizens living \
abroad, and the monthly information packet to migrant organisations, and reports \
every send against the work programme's totals.

Start here:
  aviso demo                                  the whole job on a sample, no servers needed
  aviso contacts import export.csv --list registro
  aviso contacts count --list registro --segment 'entity=OAX channel=sms'

Settings come from ./aviso.toml (or --config FILE); the database defaults to \
sqlite://aviso.db in the current directory.";

#[derive(Debug, Parser)]
#[command(name = "aviso", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Configuration file [default: ./aviso.toml if present]
    #[arg(long, global = true, env = "AVISO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database: sqlite://FILE or postgres://USER@HOST/DB [default: sqlite://aviso.db]
    #[arg(long, global = true, env = "AVISO_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Templates directory [default: ./templates if present, else the built-in templates]
    #[arg(long, global = true, env = "AVISO_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import, count and inspect contacts
    #[command(subcommand)]
    Contacts(contacts::ContactsCommand),
    /// Addresses that must never be messaged again
    #[command(subcommand)]
    Suppress(suppress::SuppressCommand),
    /// Check and preview the bilingual message templates
    #[command(subcommand)]
    Templates(templates::TemplatesCommand),
    /// How a text travels as SMS: encoding, length, segments
    SmsInfo(templates::SmsInfoArgs),
}

/// What every command needs: the settings and a way to reach the database.
pub struct Context {
    pub config: Config,
    pub database_url: String,
    pub templates_dir: Option<PathBuf>,
    pub clock: Arc<dyn Clock>,
}

impl Context {
    pub async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(crate::store::open(&self.database_url).await?)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn template_set(&self) -> anyhow::Result<TemplateSet> {
        Ok(match &self.templates_dir {
            Some(dir) => TemplateSet::from_dir(dir)?,
            None => TemplateSet::built_in()?,
        })
    }

    pub fn email_settings(&self) -> anyhow::Result<EmailSettings> {
        let email = &self.config.file.email;
        let unsubscribe = email
            .unsubscribe_url
            .clone()
            .unwrap_or_else(|| format!("{}/unsubscribe/{{token}}", self.config.public_url()));
        Ok(EmailSettings::new(
            email.from.as_deref().unwrap_or(DEFAULT_FROM),
            unsubscribe,
            email.attachment_limit.unwrap_or(DEFAULT_ATTACHMENT_LIMIT),
        )?)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    let database_url = config.database_url(cli.database_url.as_deref());
    let templates_dir = config.templates_dir(cli.templates.as_deref());
    let ctx = Context {
        config,
        database_url,
        templates_dir,
        clock: Arc::new(SystemClock),
    };
    match cli.command {
        Command::Contacts(cmd) => contacts::run(&ctx, cmd).await,
        Command::Suppress(cmd) => suppress::run(&ctx, cmd).await,
        Command::Templates(cmd) => templates::run(&ctx, cmd).await,
        Command::SmsInfo(args) => templates::sms_info(args),
    }
}

/// Logs go to stderr; `AVISO_LOG` (e.g. `debug`, `aviso=trace`) changes the level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AVISO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,aviso=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// The error and its causes on one line, without repeating what a cause already said.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// Prints to stdout; a closed pipe (`aviso … | head`) ends the program quietly.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    print(&serde_json::to_string(value).context("cannot write JSON")?);
    Ok(())
}

/// `12345` → `12,345`: counts people read.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}
