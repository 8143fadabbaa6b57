//! The scale-out backend: several `aviso worker` processes on several hosts share
//! one PostgreSQL database and claim work with `FOR UPDATE SKIP LOCKED`.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use super::{StoreError, StoreResult};

/// Connects to the database and brings its schema up to date.
pub(super) async fn open_pool(url: &str) -> StoreResult<PgPool> {
    let open_error = |source| StoreError::Open {
        url: crate::domain::redact_url(url),
        source,
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(open_error)?
        .log_slow_statements(log::LevelFilter::Debug, super::SLOW_STATEMENT);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        // No idle reaper (see the SQLite store: sqlx#3645). Connections the
        // server closed are found and replaced when next acquired.
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(open_error)?;
    sqlx::migrate!("migrations/postgres").run(&pool).await?;
    Ok(pool)
}
