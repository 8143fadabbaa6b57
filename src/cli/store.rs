//! `aviso migrate-store` and `aviso backup`: moving and copying the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use serde::Serialize;

use super::{print, print_json, thousands, Context};
use crate::store::backup::backup;
use crate::store::copy::{self, CopyReport};

pub(super) const MIGRATE_ABOUT: &str = "\
Copies this workspace's database (--database-url, AVISO_DATABASE_URL or aviso.toml: \
the source) into another database, e.g. from the embedded SQLite file to the \
PostgreSQL server that several workers share, or back.

Every aviso table is copied with its ids. The target is brought to the current \
schema first and must hold no rows: create a PostgreSQL database with `createdb`; \
a SQLite target file is created (readable by its owner only). The source is read \
in one snapshot, so a worker may keep running, but stop the workers first if the \
target is to take over: what they send after the snapshot is not copied.

When the copy is written, each table's rows are counted and checksummed on both \
sides (the same canonical form on SQLite and PostgreSQL) and printed. The copy is \
one transaction: if any table differs, or anything fails, the target is left \
empty and the command exits with status 1.

Examples:
  aviso migrate-store --to postgres://aviso@db.internal/aviso
  aviso --database-url postgres://aviso@db.internal/aviso migrate-store --to sqlite://back.db
  aviso migrate-store --verify-only --to postgres://aviso@db.internal/aviso --json";

#[derive(Debug, Args)]
pub struct MigrateStoreArgs {
    /// The database to copy into: postgres://USER@HOST/DB (an existing, empty
    /// database, made with createdb) or sqlite://FILE (created if missing)
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Compare the two databases table by table (counts and checksums) and copy
    /// nothing; exits with status 1 if any table differs
    #[arg(long)]
    pub verify_only: bool,
    /// Print the table-by-table comparison as JSON
    #[arg(long)]
    pub json: bool,
}

pub(super) const BACKUP_ABOUT: &str = "\
Writes a consistent copy of the SQLite database to FILE while workers keep \
sending: the copy is one moment of the database, every message recorded as sent \
before it began is in it. FILE is readable by its owner only; it is written under \
a temporary name beside it and renamed when complete. Restore by stopping aviso \
and putting FILE in place of the database file.

A PostgreSQL database is backed up with pg_dump: the command says how.

Examples:
  aviso backup /var/backups/aviso-$(date +%F).db
  aviso backup nightly.db --force --json";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy, e.g. /var/backups/aviso.db
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
    /// Print what was written as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct MigrateOutput<'a> {
    source: String,
    target: String,
    #[serde(flatten)]
    report: &'a CopyReport,
}

pub(super) async fn migrate_store(
    ctx: &Context,
    args: MigrateStoreArgs,
) -> anyhow::Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} rows {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = if args.verify_only {
        copy::verify(&ctx.settings.database_url, &args.to, &bar).await
    } else {
        copy::copy(&ctx.settings.database_url, &args.to, &bar).await
    };
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        print_json(&MigrateOutput {
            source: crate::domain::redact_url(&ctx.settings.database_url),
            target: crate::domain::redact_url(&args.to),
            report: &report,
        })?;
    } else {
        print_report(&report);
    }
    let differing = report.differing();
    if !differing.is_empty() {
        let outcome = if args.verify_only {
            "the databases differ"
        } else {
            "the copy was undone and the target left empty"
        };
        bail!(
            "{} table(s) differ between the source and the target ({}): {outcome}",
            differing.len(),
            differing.join(", ")
        );
    }
    if !args.json && report.copied {
        print(&format!(
            "copied into {}: every table matches",
            crate::domain::redact_url(&args.to)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &CopyReport) {
    let rows = |s: &Option<copy::Summary>| {
        s.as_ref()
            .map_or("missing".to_string(), |s| thousands(s.rows as i64))
    };
    // The first 16 hex digits tell tables apart; --json gives all 64.
    let sum = |s: &Option<copy::Summary>| {
        s.as_ref()
            .map_or("-".to_string(), |s| s.checksum.chars().take(16).collect())
    };
    print(&format!(
        "{:<20} {:>12} {:>12}  {:<16}  {:<16}",
        "table", "source rows", "target rows", "source sum", "target sum"
    ));
    for t in &report.tables {
        print(&format!(
            "{:<20} {:>12} {:>12}  {:<16}  {:<16}  {}",
            t.table,
            rows(&t.source),
            rows(&t.target),
            sum(&t.source),
            sum(&t.target),
            if t.matches() { "ok" } else { "DIFFERS" }
        ));
    }
}

pub(super) async fn run_backup(ctx: &Context, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let summary = backup(&ctx.settings.database_url, &args.file, args.force).await?;
    if args.json {
        print_json(&summary)?;
    } else {
        print(&format!(
            "{}: {} bytes, {} tables, {} messages",
            summary.path.display(),
            thousands(summary.bytes as i64),
            summary.tables,
            thousands(summary.messages)
        ));
    }
    Ok(ExitCode::SUCCESS)
}
