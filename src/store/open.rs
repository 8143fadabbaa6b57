//! Which backend a database URL names.

use std::sync::Arc;

use super::sql::{Pool, SqlStore};
use super::{postgres, sqlite, Store, StoreError, StoreResult};

/// Opens (creating if needed) the database at `url` and brings its schema up to date.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = Pool::Postgres(postgres::open_pool(url).await?);
        Ok(Arc::new(SqlStore::new(pool)))
    } else if url.starts_with("sqlite:") || !url.contains("://") {
        let pool = Pool::Sqlite(sqlite::open_pool(url).await?);
        Ok(Arc::new(SqlStore::new(pool)))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
