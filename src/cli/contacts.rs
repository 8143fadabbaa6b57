use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use super::{print, print_json, thousands, Context};
use crate::contacts::{import_file, Encoding, ImportOptions, Segment};

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Import a registry export or the OSC directory (CSV) into a list.
    ///
    /// Rows are checked one by one; a row with a bad phone, e-mail, entity or
    /// language is rejected with its line number and reason, written to the
    /// rejects file, and never silently dropped: read = imported + updated +
    /// unchanged + rejected. Importing the same file again changes nothing.
    Import(ImportArgs),
    /// Count contacts in a list or segment, by entity, channel and language
    Count(CountArgs),
    /// Show one stored contact
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file (UTF-8 or Latin-1; Spanish or English headers)
    pub file: PathBuf,
    /// The list the contacts join (created if new; membership is added, never replaced)
    #[arg(long)]
    pub list: String,
    /// Where to write rejected rows [default: ./<file name>.rejects.csv]
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Check the file and report what would change, without writing contacts
    #[arg(long)]
    pub dry_run: bool,
    /// Force the file's encoding instead of detecting it: utf8 or latin1
    #[arg(long, value_parser = parse_encoding)]
    pub encoding: Option<Encoding>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_encoding(s: &str) -> Result<Encoding, String> {
    Encoding::parse(s).map_err(|e| e.0)
}

#[derive(Debug, Args)]
pub struct CountArgs {
    /// Only contacts in this list
    #[arg(long)]
    pub list: Option<String>,
    /// e.g. 'entity=OAX,DGO country=US lang=en channel=sms population=primaria credential=CPVE'
    #[arg(long, default_value = "")]
    pub segment: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The contact's id (id_contacto, or OSC-… for organisations)
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(ctx: &Context, cmd: ContactsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ContactsCommand::Import(args) => import(ctx, args).await,
        ContactsCommand::Count(args) => count(ctx, args).await,
        ContactsCommand::Show(args) => show(ctx, args).await,
    }
}

async fn import(ctx: &Context, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let options = ImportOptions {
        list: args.list.clone(),
        rejects: args.rejects,
        dry_run: args.dry_run,
        encoding: args.encoding,
        progress: std::io::stderr().is_terminal(),
    };
    let summary = import_file(store.as_ref(), &args.file, &options, ctx.now_ms()).await?;
    if args.json {
        print_json(&serde_json::json!({
            "read": summary.read,
            "imported": summary.imported,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "rejected": summary.rejected,
            "rejects_file": summary.rejects_file,
            "kind": summary.kind,
            "list": args.list,
            "dry_run": summary.dry_run,
        }))?;
    } else {
        let verb = if summary.dry_run {
            "Checked (dry run, nothing written)"
        } else {
            "Imported"
        };
        print(&format!(
            "{verb} {} into list {:?}: {} rows read",
            args.file.display(),
            args.list,
            thousands(summary.read as i64)
        ));
        print(&format!(
            "  {} new, {} updated, {} unchanged, {} rejected",
            thousands(summary.imported as i64),
            thousands(summary.updated as i64),
            thousands(summary.unchanged as i64),
            thousands(summary.rejected as i64),
        ));
        if let Some(file) = &summary.rejects_file {
            print(&format!("  rejected rows, with line and reason: {file}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn count(ctx: &Context, args: CountArgs) -> anyhow::Result<ExitCode> {
    let segment = Segment::parse(&args.segment)?;
    let store = ctx.store().await?;
    let list_id = match &args.list {
        Some(name) => Some(store.list_id(name).await?.ok_or_else(|| {
            anyhow!("list {name:?} does not exist (import contacts into it first)")
        })?),
        None => None,
    };
    let counts = store.count_contacts(list_id, &segment).await?;
    if args.json {
        return print_json(&counts).map(|_| ExitCode::SUCCESS);
    }
    let scope = match (&args.list, segment.is_empty()) {
        (Some(l), true) => format!(" in list {l:?}"),
        (Some(l), false) => format!(" in list {l:?} matching '{segment}'"),
        (None, false) => format!(" matching '{segment}'"),
        (None, true) => String::new(),
    };
    print(&format!("{} contacts{scope}", thousands(counts.total)));
    let join = |m: &std::collections::BTreeMap<String, i64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    print(&format!("  by entity:   {}", join(&counts.by_entity)));
    print(&format!(
        "  by channel:  sms {}, email {}",
        thousands(counts.by_channel.sms),
        thousands(counts.by_channel.email)
    ));
    print(&format!("  by language: {}", join(&counts.by_language)));
    print(&format!("  by kind:     {}", join(&counts.by_kind)));
    Ok(ExitCode::SUCCESS)
}

async fn show(ctx: &Context, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let Some(record) = store.contact(&args.id).await? else {
        bail!("contact {:?} does not exist", args.id);
    };
    let c = &record.contact;
    let value = serde_json::json!({
        "id": c.id,
        "kind": c.kind,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "entity": c.entity,
        "country": c.country,
        "email": c.email,
        "phone": c.phone,
        "language": c.language,
        "credential": c.credential,
        "population": c.population,
        "modality": c.modality,
        "lists": record.lists,
    });
    if args.json {
        print_json(&value)?;
    } else {
        print(&serde_json::to_string_pretty(&value)?);
    }
    Ok(ExitCode::SUCCESS)
}
