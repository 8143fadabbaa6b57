//! `aviso migrate-store`: copies every aviso table of one database into
//! another, SQLite or PostgreSQL either way, and proves the copy by each
//! table's row count and checksum computed alike on both.
//!
//! The tables are read from the databases' own catalogues, not listed here, so
//! a table a later migration adds is copied without touching this module. Ids
//! are kept. The source is read in one snapshot (a worker may keep sending);
//! the target is written in one transaction that commits only when every
//! table's checksum matches, so a failed copy leaves it as empty as it was.

mod error;
mod lite;
mod pg;
mod rows;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use sqlx::{Connection, Postgres, Sqlite, Transaction};

pub use error::CopyError;
pub use rows::Summary;
use rows::{TableSum, Value};
use table::{plan, quote, Table};

use super::{postgres, sqlite, StoreError};

/// One table compared: `None` where the table is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub source: Option<Summary>,
    pub target: Option<Summary>,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source.is_some() && self.source == self.target
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// Whether the target now holds the copy (false after a verification, or
    /// when a table differed and the copy was rolled back).
    pub copied: bool,
    /// By table name.
    pub tables: Vec<TableCheck>,
}

impl CopyReport {
    /// The tables whose count or checksum differ.
    pub fn differing(&self) -> Vec<&str> {
        self.tables
            .iter()
            .filter(|t| !t.matches())
            .map(|t| t.table.as_str())
            .collect()
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Where a table's reading has got to.
#[derive(Default)]
struct Cursor {
    after: Vec<Value>,
    done: bool,
}

/// One database, in one transaction.
enum Side {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Side {
    /// Opens the database the way aviso always does (migrating it to the
    /// current schema) and starts a transaction: for a `snapshot`, one that
    /// sees a single moment however long the reading takes.
    async fn open(url: &str, snapshot: bool) -> Result<Side, CopyError> {
        let begin = CopyError::sql("starting a transaction");
        if is_postgres(url) {
            let pool = postgres::open_pool(url).await?;
            let mut tx = pool.begin().await.map_err(begin)?;
            if snapshot {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .map_err(CopyError::sql("starting a snapshot"))?;
            }
            Ok(Side::Postgres(tx))
        } else {
            // A deferred transaction in WAL mode reads one snapshot, taken at
            // its first read, and lets a worker go on writing meanwhile.
            let pool = sqlite::open_pool(url).await?;
            Ok(Side::Sqlite(pool.begin().await.map_err(begin)?))
        }
    }

    async fn tables(&mut self) -> Result<Vec<Table>, CopyError> {
        match self {
            Side::Sqlite(tx) => lite::tables(tx).await,
            Side::Postgres(tx) => pg::tables(tx).await,
        }
    }

    async fn count(&mut self, table: &Table) -> Result<u64, CopyError> {
        let sql = format!("SELECT COUNT(*) FROM {}", quote(&table.name));
        let what = CopyError::sql(format!("counting the rows of {}", table.name));
        let n: i64 = match self {
            Side::Sqlite(tx) => sqlx::query_scalar(&sql).fetch_one(&mut **tx).await,
            Side::Postgres(tx) => sqlx::query_scalar(&sql).fetch_one(&mut **tx).await,
        }
        .map_err(what)?;
        Ok(n.max(0) as u64)
    }

    /// The next page of `table` in key order; `None` once it is all read.
    async fn next_page(
        &mut self,
        table: &Table,
        cursor: &mut Cursor,
    ) -> Result<Option<Vec<Vec<Value>>>, CopyError> {
        if cursor.done {
            return Ok(None);
        }
        let limit = table.page_rows();
        let sql = table.page_sql(!cursor.after.is_empty(), limit);
        let what = || CopyError::sql(format!("reading {}", table.name));
        let width = table.columns.len();
        let page = match self {
            Side::Sqlite(tx) => {
                let mut query = sqlx::query(&sql);
                for value in &cursor.after {
                    query = lite::bind(query, value);
                }
                let rows = query.fetch_all(&mut **tx).await.map_err(what())?;
                rows.iter()
                    .map(|row| (0..width).map(|i| lite::value(row, i)).collect())
                    .collect::<Result<Vec<Vec<Value>>, _>>()
                    .map_err(what())?
            }
            Side::Postgres(tx) => {
                let mut query = sqlx::query(&sql);
                for (value, &i) in cursor.after.iter().zip(&table.key) {
                    query = bind_pg(query, table, i, value)?;
                }
                let rows = query.fetch_all(&mut **tx).await.map_err(what())?;
                rows.iter()
                    .map(|row| {
                        (0..width)
                            .map(|i| pg::value(row, i, &table.columns[i].1))
                            .collect()
                    })
                    .collect::<Result<Vec<Vec<Value>>, _>>()
                    .map_err(what())?
            }
        };
        cursor.done = page.len() < limit;
        match page.last() {
            Some(last) => cursor.after = table.key.iter().map(|&i| last[i].clone()).collect(),
            None => return Ok(None),
        }
        Ok(Some(page))
    }

    async fn insert(&mut self, table: &Table, rows: &[Vec<Value>]) -> Result<(), CopyError> {
        let sql = table.insert_sql(rows.len());
        let what = CopyError::sql(format!("writing {}", table.name));
        match self {
            Side::Sqlite(tx) => {
                let mut query = sqlx::query(&sql);
                for value in rows.iter().flatten() {
                    query = lite::bind(query, value);
                }
                query.execute(&mut **tx).await.map_err(what)?;
            }
            Side::Postgres(tx) => {
                let mut query = sqlx::query(&sql);
                for row in rows {
                    for (i, value) in row.iter().enumerate() {
                        query = bind_pg(query, table, i, value)?;
                    }
                }
                query.execute(&mut **tx).await.map_err(what)?;
            }
        }
        Ok(())
    }

    /// The table's row count and checksum, as this transaction sees it.
    async fn sum(
        &mut self,
        table: &Table,
        progress: &indicatif::ProgressBar,
    ) -> Result<Summary, CopyError> {
        let mut sum = TableSum::default();
        let mut cursor = Cursor::default();
        while let Some(page) = self.next_page(table, &mut cursor).await? {
            page.iter().for_each(|row| sum.add(row));
            progress.inc(page.len() as u64);
        }
        Ok(sum.summary())
    }

    async fn commit(self) -> Result<(), CopyError> {
        let what = CopyError::sql("committing the copy");
        match self {
            Side::Sqlite(tx) => tx.commit().await.map_err(what),
            Side::Postgres(mut tx) => {
                pg::reset_sequences(&mut tx).await?;
                tx.commit().await.map_err(what)
            }
        }
    }
}

fn bind_pg<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    table: &Table,
    column: usize,
    value: &'q Value,
) -> Result<sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>, CopyError> {
    let (name, kind) = &table.columns[column];
    pg::bind(query, value, kind).map_err(|detail| CopyError::Value {
        table: table.name.clone(),
        column: name.clone(),
        detail,
    })
}

/// Copies the database at `source_url` into the empty one at `target_url`
/// (created if it is a SQLite file) and compares them table by table. The
/// target keeps the copy only if every table matches (`copied`).
pub async fn copy(
    source_url: &str,
    target_url: &str,
    progress: &indicatif::ProgressBar,
) -> Result<CopyReport, CopyError> {
    ensure_distinct(source_url, target_url)?;
    // Before the target is opened, which would migrate it: a refusal changes nothing.
    if let Some(table) = table_with_rows(target_url).await? {
        return Err(CopyError::TargetNotEmpty { table });
    }
    let mut source = Side::open(source_url, true).await?;
    let mut target = Side::open(target_url, false).await?;
    let plan = plan(source.tables().await?, target.tables().await?)?;
    let mut total = 0;
    for (from, to) in &plan {
        // Again inside the transaction: nothing slipped in since the check.
        if target.count(to).await? > 0 {
            return Err(CopyError::TargetNotEmpty {
                table: to.name.clone(),
            });
        }
        total += source.count(from).await?;
    }
    progress.set_length(2 * total);
    let mut sums = Vec::new();
    for (from, to) in &plan {
        progress.set_message(format!("copying {}", from.name));
        let mut sum = TableSum::default();
        let mut cursor = Cursor::default();
        while let Some(page) = source.next_page(from, &mut cursor).await? {
            page.iter().for_each(|row| sum.add(row));
            target.insert(to, &page).await?;
            progress.inc(page.len() as u64);
        }
        sums.push(sum.summary());
    }
    let mut tables = Vec::new();
    for ((_, to), sum) in plan.iter().zip(sums) {
        progress.set_message(format!("verifying {}", to.name));
        tables.push(TableCheck {
            table: to.name.clone(),
            source: Some(sum),
            target: Some(target.sum(to, progress).await?),
        });
    }
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    let copied = tables.iter().all(TableCheck::matches);
    // Otherwise the transaction is dropped: rolled back, the target left empty.
    if copied {
        target.commit().await?;
    }
    Ok(CopyReport { copied, tables })
}

/// Compares the two databases table by table, changing neither (beyond
/// bringing their schema up to date, as every aviso command does).
pub async fn verify(
    source_url: &str,
    target_url: &str,
    progress: &indicatif::ProgressBar,
) -> Result<CopyReport, CopyError> {
    ensure_distinct(source_url, target_url)?;
    for url in [source_url, target_url] {
        if !is_postgres(url) {
            let path = sqlite::file_path(url)?;
            if !Path::new(path).exists() {
                return Err(CopyError::NoDatabase(path.to_string()));
            }
        }
    }
    let mut sides = [
        Side::open(source_url, true).await?,
        Side::open(target_url, true).await?,
    ];
    let mut found: [BTreeMap<String, Table>; 2] = Default::default();
    let mut total = 0;
    for (side, tables) in sides.iter_mut().zip(&mut found) {
        for table in side.tables().await? {
            if table.key.is_empty() {
                return Err(CopyError::NoPrimaryKey { table: table.name });
            }
            total += side.count(&table).await?;
            tables.insert(table.name.clone(), table);
        }
    }
    progress.set_length(total);
    let names: BTreeSet<&String> = found.iter().flat_map(|t| t.keys()).collect();
    let mut tables = Vec::new();
    for name in names {
        progress.set_message(format!("verifying {name}"));
        let mut summaries = [None, None];
        for ((side, found), summary) in sides.iter_mut().zip(&found).zip(&mut summaries) {
            if let Some(table) = found.get(name) {
                *summary = Some(side.sum(table, progress).await?);
            }
        }
        let [source, target] = summaries;
        tables.push(TableCheck {
            table: name.clone(),
            source,
            target,
        });
    }
    Ok(CopyReport {
        copied: false,
        tables,
    })
}

/// The first aviso table holding a row, read without migrating the database.
async fn table_with_rows(url: &str) -> Result<Option<String>, CopyError> {
    let open = |source| StoreError::Open {
        url: crate::domain::redact_url(url),
        source,
    };
    if is_postgres(url) {
        let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(open)?;
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(open)?;
        let tables = pg::table_names(&mut conn).await?;
        first_with_rows(&mut conn, tables).await
    } else {
        let path = sqlite::file_path(url)?;
        if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
            return Ok(None);
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(std::time::Duration::from_secs(30));
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(open)?;
        let tables = lite::table_names(&mut conn).await?;
        first_with_rows(&mut conn, tables).await
    }
}

async fn first_with_rows<DB, C>(
    conn: &mut C,
    tables: Vec<String>,
) -> Result<Option<String>, CopyError>
where
    DB: sqlx::Database,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    for table in tables {
        let sql = format!("SELECT 1 FROM {} LIMIT 1", quote(&table));
        let row = sqlx::query::<DB>(&sql)
            .fetch_optional(&mut *conn)
            .await
            .map_err(CopyError::sql(format!("reading {table}")))?;
        if row.is_some() {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// Where a database lives, to tell whether two URLs name the same one.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    File(PathBuf),
    Server {
        host: String,
        port: u16,
        database: String,
    },
}

fn location(url: &str) -> Result<Location, CopyError> {
    if is_postgres(url) {
        let options =
            sqlx::postgres::PgConnectOptions::from_str(url).map_err(|source| StoreError::Open {
                url: crate::domain::redact_url(url),
                source,
            })?;
        return Ok(Location::Server {
            host: options.get_host().to_string(),
            port: options.get_port(),
            database: options
                .get_database()
                .unwrap_or(options.get_username())
                .to_string(),
        });
    }
    if url.contains("://") && !url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl(url.to_string()).into());
    }
    let path = Path::new(sqlite::file_path(url)?);
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // A file that does not exist yet cannot be resolved; its folder can.
    let resolved = match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|dir| dir.join(name))
            .unwrap_or(absolute.clone()),
        _ => absolute.clone(),
    };
    Ok(Location::File(resolved.canonicalize().unwrap_or(resolved)))
}

fn ensure_distinct(source_url: &str, target_url: &str) -> Result<(), CopyError> {
    if location(source_url)? == location(target_url)? {
        return Err(CopyError::SameDatabase(crate::domain::redact_url(
            target_url,
        )));
    }
    Ok(())
}
