//! `aviso calls export|import`: the call centre's work list after a campaign,
//! and the results of its calls.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{print, print_json, thousands, Context};
use crate::calls::{import_results, work_list, write_work_list};
use crate::domain::Country;

#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// The work list of the citizens a campaign could not reach, for the call centre.
    ///
    /// Citizens whose message failed or bounced, whose address was suppressed
    /// as invalid, or who have no address for the campaign's channel; by
    /// entity, with the phone in international and national form, name,
    /// preferred language, the reason and the contact id. The columns fecha
    /// and resultado are left for the call centre to fill in; the file then
    /// comes back with `aviso calls import`. Citizens without any phone cannot
    /// be on the list: they are counted at the end.
    ///
    /// Example: aviso calls export --campaign 3 --out llamar.csv
    Export(ExportArgs),
    /// Record the call centre's results as attempts of a calls activity.
    ///
    /// A CSV with a header row: id_contacto (or contact_id) and/or telefono
    /// (or phone, with lada if the number has no country code), fecha (or
    /// date, 2021-10-15) and resultado (or outcome: Contestó, No contestó,
    /// Número equivocado, Ciudadano fallecido, Solicitó no se le vuelva a
    /// llamar; or answered, no answer, wrong number, deceased, asked not to be
    /// contacted). Every row becomes an attempt of the activity, so its
    /// indicator fills in; wrong numbers, deaths and "do not contact" also stop
    /// messages, as `aviso suppress import-calls` does. Rows with a mistake are
    /// rejected with their line and reason (exit status 1); importing the same
    /// file again records nothing twice.
    ///
    /// Example: aviso calls import llamar.csv --activity LLAMADAS
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The campaign whose unreached citizens to list
    #[arg(long)]
    pub campaign: i64,
    /// Write here (readable by its owner only) instead of the terminal
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The call centre's results (CSV)
    pub file: PathBuf,
    /// The activity the calls count towards (its code, e.g. LLAMADAS)
    #[arg(long, value_name = "CODE")]
    pub activity: String,
    /// Country of numbers written without a country code, e.g. US
    #[arg(long)]
    pub country: Option<String>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(ctx: &Context, cmd: CallsCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match cmd {
        CallsCommand::Export(args) => {
            let campaign = store
                .campaign(args.campaign)
                .await?
                .with_context(|| format!("campaign {} does not exist", args.campaign))?;
            let list = work_list(store.as_ref(), &campaign).await?;
            match &args.out {
                Some(path) => {
                    let file = super::report::open_private(path)
                        .with_context(|| format!("{}: cannot write", path.display()))?;
                    write_work_list(&list, BufWriter::new(file))
                        .with_context(|| format!("{}: cannot write", path.display()))?;
                }
                None => {
                    write_work_list(&list, BufWriter::new(std::io::stdout().lock()))
                        .context("cannot write the work list")?;
                }
            }
            // The summary goes to stderr when the list itself goes to stdout.
            let say = |text: &str| match args.out {
                Some(_) => print(text),
                None => eprintln!("{text}"),
            };
            let by_entity = list
                .by_entity()
                .iter()
                .map(|(e, n)| format!("{e} {}", thousands(*n)))
                .collect::<Vec<_>>()
                .join(", ");
            let by_entity = match by_entity.is_empty() {
                true => String::new(),
                false => format!(" ({by_entity})"),
            };
            say(&format!(
                "{} citizens to call{by_entity}",
                thousands(list.items.len() as i64)
            ));
            let without: i64 = list.without_phone.values().sum();
            if without > 0 {
                let detail = list
                    .without_phone
                    .iter()
                    .map(|(e, n)| format!("{e} {}", thousands(*n)))
                    .collect::<Vec<_>>()
                    .join(", ");
                say(&format!(
                    "{} unreached citizens have no phone at all and are not on the list ({detail})",
                    thousands(without)
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        CallsCommand::Import(args) => {
            let activity = store.activity(&args.activity).await?.with_context(|| {
                format!(
                    "activity {:?} does not exist (create it with `aviso activity create`)",
                    args.activity
                )
            })?;
            let region = args.country.as_deref().map(Country::parse).transpose()?;
            let report =
                import_results(store.as_ref(), &args.file, &activity, region, ctx.now_ms()).await?;
            for (line, reason) in &report.rejections {
                eprintln!("{}, line {line}: rejected: {reason}", args.file.display());
            }
            if args.json {
                print_json(&report)?;
            } else {
                print(&format!(
                    "{} rows read: {} imported ({} new attempts of {}, {} recorded before), {} rejected; {} new suppressions",
                    thousands(report.read as i64),
                    thousands(report.imported as i64),
                    thousands(report.new_attempts as i64),
                    activity.code,
                    thousands(report.already_recorded as i64),
                    thousands(report.rejected as i64),
                    thousands(report.suppressions_added as i64)
                ));
            }
            Ok(if report.rejected == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
