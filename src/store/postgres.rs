//! The scale-out backend: several `aviso worker` processes on several hosts share
//! one PostgreSQL database and claim work with `FOR UPDATE SKIP LOCKED`.

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use super::{StoreError, StoreResult};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(url),
                source,
            })?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

super::portable::portable_store!(
    PostgresStore,
    Postgres,
    "postgres",
    " FOR UPDATE SKIP LOCKED"
);
