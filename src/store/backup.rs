//! `aviso backup`: a consistent copy of the SQLite database, taken while
//! workers keep sending.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use super::{sqlite, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: give --force to replace it, or another file name")]
    Exists(PathBuf),
    #[error(
        "aviso backup copies SQLite databases; back up PostgreSQL with its own tool: {command}"
    )]
    Postgres { command: String },
    #[error("there is no database at {0}")]
    NoDatabase(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot copy the database into {path}: {source}")]
    Copy { path: PathBuf, source: sqlx::Error },
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub tables: i64,
    pub messages: i64,
}

/// Copies the SQLite database at `url` into `dest` (0600), replacing an
/// existing file only with `force`.
pub async fn backup(url: &str, dest: &Path, force: bool) -> Result<BackupSummary, BackupError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(BackupError::Postgres {
            command: pg_dump_command(url, dest),
        });
    }
    let source = sqlite::file_path(url)?;
    if !Path::new(source).is_file() {
        return Err(BackupError::NoDatabase(source.to_string()));
    }
    if dest.exists() && !force {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Written beside FILE and renamed into place: FILE is never half a backup.
    let partial = dest.with_file_name(format!(".{name}.partial"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    if partial.exists() {
        std::fs::remove_file(&partial).map_err(io(&partial))?;
    }
    // VACUUM INTO fills an existing empty file and keeps its mode: created
    // owner-only first, the copy is never readable by others, even briefly.
    sqlite::create_private(&partial).map_err(io(&partial))?;
    let written = vacuum_into(source, &partial).await.and_then(|()| {
        // VACUUM INTO does not sync what it wrote; a backup must survive a power cut.
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io(&partial))?;
        std::fs::rename(&partial, dest).map_err(io(dest))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let bytes = std::fs::metadata(dest).map_err(io(dest))?.len();
    let (tables, messages) = contents(dest).await?;
    Ok(BackupSummary {
        path: dest.to_path_buf(),
        bytes,
        tables,
        messages,
    })
}

/// `VACUUM INTO` rather than SQLite's backup API: it copies in one read
/// transaction, so the copy is one consistent moment and, in WAL mode, the
/// workers keep writing meanwhile; the backup API starts over each time another
/// connection writes, and with a busy worker may never finish. It also leaves
/// out free pages, so the copy is as small as the data.
async fn vacuum_into(source: &str, partial: &Path) -> Result<(), BackupError> {
    let copy_error = |source| BackupError::Copy {
        path: partial.to_path_buf(),
        source,
    };
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{source}"))
        .map_err(copy_error)?
        .busy_timeout(Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(copy_error)?;
    sqlx::query("VACUUM INTO $1")
        .bind(partial.to_string_lossy().as_ref())
        .execute(&mut conn)
        .await
        .map_err(copy_error)?;
    let _ = conn.close().await;
    Ok(())
}

/// The copy's tables and messages, read back from the copy itself.
async fn contents(path: &Path) -> Result<(i64, i64), BackupError> {
    let read_error = |source| BackupError::Copy {
        path: path.to_path_buf(),
        source,
    };
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(read_error)?;
    let tables = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(read_error)?;
    let messages = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .map_err(read_error)?;
    let _ = conn.close().await;
    Ok((tables, messages))
}

/// The pg_dump invocation that backs up the database at `url` into `dest`:
/// the URL without its password (pg_dump reads it from PGPASSWORD or ~/.pgpass).
fn pg_dump_command(url: &str, dest: &Path) -> String {
    let url = match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    };
    format!(
        "pg_dump --format=custom --file={} {}",
        shell_quote(&dest.display().to_string()),
        shell_quote(&url)
    )
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pg_dump_command_leaves_the_password_out() {
        assert_eq!(
            pg_dump_command(
                "postgres://aviso:s3cret@db.internal:5433/aviso",
                Path::new("/var/backups/aviso's.dump")
            ),
            r"pg_dump --format=custom --file='/var/backups/aviso'\''s.dump' 'postgres://aviso@db.internal:5433/aviso'"
        );
    }
}
