use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{print, print_json, Context};
use crate::domain::{Address, SuppressionReason, SuppressionScope};
use crate::store::Suppression;

#[derive(Debug, Subcommand)]
pub enum SuppressCommand {
    /// Suppress one address (an e-mail, or a phone in international form: +1 213 555 0123)
    Add(AddArgs),
    /// Suppress every address of a CSV with columns address,channel,reason
    Import(ImportArgs),
    /// List suppressed addresses
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub address: String,
    /// sms, email or all [default: the address's own channel]
    #[arg(long, value_parser = parse_scope)]
    pub channel: Option<SuppressionScope>,
    /// opt_out, hard_bounce, invalid, deceased, do_not_contact or complaint
    #[arg(long, value_parser = parse_reason)]
    pub reason: SuppressionReason,
    /// Who asked (kept for audit)
    #[arg(long, default_value = "cli")]
    pub source: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV with a header row: address,channel,reason (channel may be empty: the address's own)
    pub file: PathBuf,
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_scope)]
    pub channel: Option<SuppressionScope>,
    #[arg(long)]
    pub json: bool,
}

fn parse_scope(s: &str) -> Result<SuppressionScope, String> {
    SuppressionScope::parse(s).map_err(|e| e.0)
}

fn parse_reason(s: &str) -> Result<SuppressionReason, String> {
    SuppressionReason::parse(s).map_err(|e| e.0)
}

fn own_scope(address: &Address) -> SuppressionScope {
    match address {
        Address::Email(_) => SuppressionScope::Email,
        Address::Phone(_) => SuppressionScope::Sms,
    }
}

pub async fn run(ctx: &Context, cmd: SuppressCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SuppressCommand::Add(args) => {
            let address = Address::parse(&args.address)?;
            let suppression = Suppression {
                scope: args.channel.unwrap_or_else(|| own_scope(&address)),
                address: address.to_string(),
                reason: args.reason,
                source: args.source,
                created_at: ctx.now_ms(),
            };
            let added = ctx.store().await?.add_suppressions(&[suppression]).await?;
            print(if added == 1 {
                "suppressed"
            } else {
                "already suppressed; nothing changed"
            });
            Ok(ExitCode::SUCCESS)
        }
        SuppressCommand::Import(args) => import(ctx, args).await,
        SuppressCommand::List(args) => {
            let items = ctx.store().await?.suppressions(args.channel).await?;
            if args.json {
                print_json(&items)?;
            } else {
                for s in &items {
                    print(&format!(
                        "{}\t{}\t{}\t{}",
                        s.address, s.scope, s.reason, s.source
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn import(ctx: &Context, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("{shown}: cannot read the file"))?;
    // CRLF read as LF, so that the line numbers below are those of the file.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(crate::contacts::CrlfAsLf::new(std::io::BufReader::new(
            file,
        )));
    let headers = reader
        .headers()
        .with_context(|| format!("{shown}: no header row"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let address_col = column("address")
        .with_context(|| format!("{shown}: required column \"address\" is missing"))?;
    let (channel_col, reason_col) = (column("channel"), column("reason"));
    let source = args.source.unwrap_or_else(|| format!("import:{shown}"));
    let now = ctx.now_ms();

    let mut items = Vec::new();
    let mut rejected = Vec::new();
    let mut read = 0u64;
    for record in reader.records() {
        let record = record.with_context(|| format!("{shown}: unreadable row"))?;
        read += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cell = |c: Option<usize>| c.and_then(|i| record.get(i)).unwrap_or("");
        let parsed = Address::parse(cell(Some(address_col))).and_then(|address| {
            let scope = match cell(channel_col) {
                "" => own_scope(&address),
                s => SuppressionScope::parse(s)?,
            };
            let reason = match cell(reason_col) {
                "" => SuppressionReason::OptOut,
                s => SuppressionReason::parse(s)?,
            };
            Ok(Suppression {
                address: address.to_string(),
                scope,
                reason,
                source: source.clone(),
                created_at: now,
            })
        });
        match parsed {
            Ok(s) => items.push(s),
            Err(e) => {
                eprintln!("{shown}, line {line}: rejected: {e}");
                rejected.push(line);
            }
        }
    }
    let added = ctx.store().await?.add_suppressions(&items).await?;
    let summary = serde_json::json!({
        "read": read,
        "added": added,
        "already_present": items.len() as u64 - added,
        "rejected": rejected.len(),
    });
    if args.json {
        print_json(&summary)?;
    } else {
        print(&format!(
            "{read} rows read: {added} suppressed, {} already present, {} rejected",
            items.len() as u64 - added,
            rejected.len()
        ));
    }
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
