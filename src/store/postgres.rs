//! The scale-out backend: several `aviso worker` processes on several hosts share
//! one PostgreSQL database and claim work with `FOR UPDATE SKIP LOCKED`.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres};

use super::{StoreError, StoreResult};

pub struct PostgresStore {
    pub(super) pool: PgPool,
}

impl PostgresStore {
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
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
        Ok(PostgresStore { pool })
    }
}

super::portable::portable_store!(
    PostgresStore,
    Postgres,
    "postgres",
    " FOR UPDATE SKIP LOCKED",
    "INSERT",
    // Deferrable constraints only (none yet): kept for the same sequence as SQLite.
    "SET CONSTRAINTS ALL DEFERRED",
    super::portable::Placeholders::Numbered
);

super::cap::cap_store!(PostgresStore, Postgres, " FOR UPDATE SKIP LOCKED");
