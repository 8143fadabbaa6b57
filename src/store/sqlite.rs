//! The embedded default: one SQLite file, created on first use, readable by its
//! owner only (it holds voters' contact data), in WAL mode so readers (status,
//! reports) never block the worker.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

use super::{StoreError, StoreResult, SLOW_STATEMENT};

/// Opens (creating if needed) the database file and brings its schema up to date.
pub(super) async fn open_pool(url: &str) -> StoreResult<SqlitePool> {
    let path = file_path(url)?;
    create_private(Path::new(path)).map_err(|e| StoreError::Prepare {
        url: url.to_string(),
        detail: e.to_string(),
    })?;
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|source| StoreError::Open {
            url: url.to_string(),
            source,
        })?
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL is durable across process crashes (kill -9), which is
        // what the outbox needs; only a power cut can lose the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        // An upsert's statement journal stays in memory instead of a temp file.
        .pragma("temp_store", "memory")
        // A contact import commits 10,000 rows at a time, which touches
        // thousands of index pages: a 16 MB page cache holds one commit
        // without spilling, and checkpointing every 40 MB of WAL rather
        // than every 4 MB writes each hot page to the database file once
        // per checkpoint instead of once per commit (1M rows: 14 s → 10 s).
        .pragma("cache_size", "-16384")
        .pragma("wal_autocheckpoint", "10000")
        // A claim returns up to a batch of rows: buffered whole, SQLite's
        // thread hands them over at once instead of waking the caller (and
        // waiting for it) every 50 rows.
        .row_buffer_size(super::RECORD_BATCH * 2)
        .log_slow_statements(log::LevelFilter::Debug, SLOW_STATEMENT);
    // SQLite has one writer; one connection serialises our own statements
    // instead of letting them wait on each other's locks (busy_timeout
    // still covers other processes, such as a second worker).
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        // No idle reaper: it has nothing to do for one local connection,
        // and sqlx 0.8's can spin forever and wedge the process when its
        // idle count underflows (launchbadge/sqlx#3645; seen here once in
        // CI, `campaign create` hung at 100% CPU).
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Open {
            url: url.to_string(),
            source,
        })?;
    sqlx::migrate!("migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// The file a `sqlite://FILE` (or bare path) URL names.
pub(super) fn file_path(url: &str) -> StoreResult<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    Ok(path)
}

/// Creates the database file with mode 0600 before SQLite opens it; SQLite then
/// gives its -wal and -shm files the same mode.
pub(super) fn create_private(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    crate::files::owner_only()
        .create(true)
        .append(true)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
