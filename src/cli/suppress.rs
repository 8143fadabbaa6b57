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
    /// Apply the call centre's outcomes (CSV with phone and outcome columns).
    ///
    /// "Número equivocado" / "Número incompleto o incorrecto" stop SMS to the
    /// number; "Ciudadano fallecido" and "Solicitó no se le vuelva a llamar"
    /// stop every channel of every contact with that number. Outcomes that need
    /// nothing (answered, voicemail…) are counted; unknown ones are listed with
    /// their line, never guessed, and make the exit status 1.
    ImportCalls(ImportCallsArgs),
}

#[derive(Debug, Args)]
pub struct ImportCallsArgs {
    /// CSV with a header row: telefono (or phone, optionally with lada) and resultado (or outcome)
    pub file: PathBuf,
    /// Country of numbers written without a country code, e.g. US
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub address: String,
    /// sms, email or all [default: the address's own channel]
    #[arg(long, value_parser = parse_scope)]
    pub channel: Option<SuppressionScope>,
    /// opt_out, hard_bounce, invalid, deceased, do_not_contact, complaint, or
    /// reply_opt_out (the citizen's own SMS BAJA: the only reason their ALTA lifts)
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

pub(super) async fn run(ctx: &Context, cmd: SuppressCommand) -> anyhow::Result<ExitCode> {
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
        SuppressCommand::ImportCalls(args) => import_calls(ctx, args).await,
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

type CsvReader = csv::Reader<crate::contacts::CrlfAsLf<std::io::BufReader<std::fs::File>>>;

/// A CSV with a header row, CRLF read as LF so that line numbers are the file's.
fn open_csv(path: &std::path::Path) -> anyhow::Result<(CsvReader, csv::StringRecord)> {
    let shown = path.display();
    let file =
        std::fs::File::open(path).with_context(|| format!("{shown}: cannot read the file"))?;
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
    Ok((reader, headers))
}

async fn import(ctx: &Context, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let (mut reader, headers) = open_csv(&args.file)?;
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

async fn import_calls(ctx: &Context, args: ImportCallsArgs) -> anyhow::Result<ExitCode> {
    use crate::calls::{classify_call, suppressions_for, CallOutcome};
    use crate::domain::{fold, Country, PhoneNumber};

    let shown = args.file.display().to_string();
    let region = args.country.as_deref().map(Country::parse).transpose()?;
    let (mut reader, headers) = open_csv(&args.file)?;
    let column = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.contains(&fold(h).as_str()))
    };
    let phone_col = column(&["telefono", "phone", "numero", "number"]).with_context(|| {
        format!("{shown}: required column \"telefono\" (or \"phone\") is missing")
    })?;
    let outcome_col =
        column(&["resultado", "outcome", "estatus", "status"]).with_context(|| {
            format!("{shown}: required column \"resultado\" (or \"outcome\") is missing")
        })?;
    let lada_col = column(&["lada", "country_code"]);

    let store = ctx.store().await?;
    let now = ctx.now_ms();
    let source = format!("call centre:{shown}");
    let (mut read, mut neutral, mut problems, mut applied, mut added) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for record in reader.records() {
        let record = record.with_context(|| format!("{shown}: unreadable row"))?;
        read += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
        let label = cell(Some(outcome_col));
        let Some(outcome) = classify_call(label) else {
            eprintln!("{shown}, line {line}: unknown outcome {label:?}: not applied");
            problems += 1;
            continue;
        };
        if outcome == CallOutcome::Neutral {
            neutral += 1;
            continue;
        }
        let phone = match PhoneNumber::from_parts(cell(lada_col), cell(Some(phone_col)), region) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{shown}, line {line}: {e}");
                problems += 1;
                continue;
            }
        };
        let items = suppressions_for(store.as_ref(), outcome, &phone, &source, now).await?;
        added += store.add_suppressions(&items).await?;
        applied += 1;
    }
    let summary = serde_json::json!({
        "read": read,
        "applied": applied,
        "no_action": neutral,
        "not_applied": problems,
        "suppressions_added": added,
    });
    if args.json {
        print_json(&summary)?;
    } else {
        print(&format!(
            "{read} calls read: {applied} applied ({added} new suppressions), {neutral} needing no action, {problems} not applied"
        ));
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
