//! Installation settings kept in the database.

use async_trait::async_trait;

use super::{on_pool, SqlStore};
use crate::store::{SettingStore, StoreResult};

#[async_trait]
impl SettingStore for SqlStore {
    async fn setting_or_init(&self, key: &str, default: &str) -> StoreResult<String> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(default)
            .execute(pool)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_one(pool)
                    .await?,
            )
        })
    }
}
