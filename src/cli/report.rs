use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};

use super::{print, Context};
use crate::domain::Language;
use crate::report::{self, GroupKey};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The programme's indicators: sent / programmed × 100, and delivered / sent.
    ///
    /// Counted from the message log (and `activity record` for work aviso does
    /// not send), so every format reconciles to the unit. A programmed total is
    /// split by month or entity only where the activity says how; otherwise the
    /// row shows no programmed figure rather than an invented one.
    Indicators(IndicatorArgs),
    /// One row per message of a campaign: who did not receive it, and why
    Messages(MessagesArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Xlsx,
    Svg,
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Lang {
    Es,
    En,
}

#[derive(Debug, Args)]
pub struct IndicatorArgs {
    /// First day counted (YYYY-MM-DD, in the configured zone)
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day counted (YYYY-MM-DD)
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Group rows by these, in order: activity, month, entity, channel, country, language
    #[arg(long, default_value = "activity")]
    pub by: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write here instead of the terminal (needed for xlsx)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Language of titles (table, xlsx, svg, html)
    #[arg(long, value_enum, default_value = "es")]
    pub lang: Lang,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LedgerFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct MessagesArgs {
    #[arg(long)]
    pub campaign: i64,
    /// Only these statuses, e.g. failed,suppressed
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: LedgerFormat,
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub(super) async fn run(ctx: &Context, cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match cmd {
        ReportCommand::Indicators(args) => {
            let keys = GroupKey::parse_list(&args.by)?;
            let lang = match args.lang {
                Lang::Es => Language::Es,
                Lang::En => Language::En,
            };
            let zone = ctx.settings.zone;
            let prices = ctx.settings.prices.as_deref();
            let main =
                report::indicators(store.as_ref(), &keys, args.from, args.to, zone, prices).await?;
            let bytes = match args.format {
                Format::Table => format!("{}\n", report::to_table(&main, lang)).into_bytes(),
                Format::Csv => report::to_csv(&main),
                Format::Json => format!("{}\n", report::to_json(&main)).into_bytes(),
                Format::Xlsx => {
                    let mut singles = Vec::new();
                    if keys.len() > 1 {
                        for key in &keys {
                            singles.push(
                                report::indicators(
                                    store.as_ref(),
                                    &[*key],
                                    args.from,
                                    args.to,
                                    zone,
                                    prices,
                                )
                                .await?,
                            );
                        }
                    }
                    report::to_xlsx(&main, &singles, lang)?
                }
                Format::Svg => report::to_svg(&main, lang)?.into_bytes(),
                Format::Html => report::to_html(&main, lang)?.into_bytes(),
            };
            let binary = matches!(args.format, Format::Xlsx);
            write_out(args.out.as_ref(), &bytes, binary)?;
        }
        ReportCommand::Messages(args) => {
            let Some(_) = store.campaign(args.campaign).await? else {
                bail!("campaign {} does not exist", args.campaign);
            };
            for status in &args.status {
                crate::campaigns::MessageStatus::parse(status)?;
            }
            export_ledger(store.as_ref(), &args).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The ledger, a page at a time: to a file (owner-only, written under a
/// temporary name and renamed when complete, so that a failed export never
/// looks like a whole one), or to the terminal.
async fn export_ledger(store: &dyn crate::store::Store, args: &MessagesArgs) -> anyhow::Result<()> {
    use std::io::BufWriter;
    let format = match args.format {
        LedgerFormat::Csv => report::LedgerFormat::Csv,
        LedgerFormat::Json => report::LedgerFormat::Json,
    };
    let export = |out: Box<dyn Write>| {
        let page = report::LEDGER_PAGE;
        report::export_ledger(store, args.campaign, &args.status, format, out, page)
    };
    let Some(path) = &args.out else {
        return match export(Box::new(BufWriter::new(std::io::stdout().lock()))).await {
            Ok(_) => Ok(()),
            // The reader stopped early (`| head`): not an error.
            Err(report::LedgerError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Ok(())
            }
            Err(e) => Err(e).context("cannot export the ledger"),
        };
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    let file =
        open_private(&partial).with_context(|| format!("{}: cannot write", path.display()))?;
    let rows = match export(Box::new(BufWriter::new(file))).await {
        Ok((rows, _)) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e).with_context(|| format!("{}: the export stopped", path.display()));
        }
    };
    std::fs::rename(&partial, path).with_context(|| format!("{}: cannot write", path.display()))?;
    print(&format!("{rows} message(s) written to {}", path.display()));
    Ok(())
}

/// A new file only its owner can read (exports list recipients).
pub(super) fn open_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    crate::files::owner_only()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// A report (counts, no recipients) to a file, or to the terminal.
fn write_out(out: Option<&PathBuf>, bytes: &[u8], binary: bool) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            file.write_all(bytes)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            print(&format!("written to {}", path.display()));
        }
        None if binary && std::io::stdout().is_terminal() => {
            bail!("this format is binary: give --out FILE");
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(bytes).and_then(|_| stdout.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}
