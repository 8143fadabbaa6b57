//! Addresses never to be messaged again.

use async_trait::async_trait;

use super::{on_pool, SqlStore};
use crate::store::{StoreError, StoreResult, SuppressionStore};

#[async_trait]
impl SuppressionStore for SqlStore {
    async fn add_suppressions(&self, items: &[crate::store::Suppression]) -> StoreResult<u64> {
        on_pool!(&self.pool, |pool| {
            let mut added = 0;
            let mut tx = pool.begin().await?;
            for s in items {
                added += sqlx::query(
                    "INSERT INTO suppressions (address, channel, reason, source, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (address, channel) DO NOTHING",
                )
                .bind(s.address.to_lowercase())
                .bind(s.scope.code())
                .bind(s.reason.code())
                .bind(&s.source)
                .bind(s.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(added)
        })
    }

    async fn suppressions(
        &self,
        scope: Option<crate::domain::SuppressionScope>,
    ) -> StoreResult<Vec<crate::store::Suppression>> {
        on_pool!(&self.pool, |pool| {
            let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
                "SELECT address, channel, reason, source, created_at FROM suppressions \
                 WHERE $1 = '' OR channel = $1 ORDER BY created_at, address",
            )
            .bind(scope.map(|s| s.code()).unwrap_or(""))
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|(address, channel, reason, source, created_at)| {
                    let corrupt = |e: crate::domain::Invalid| {
                        StoreError::Corrupt(format!(
                            "suppression of {}: {e}",
                            crate::domain::mask_address(&address)
                        ))
                    };
                    Ok(crate::store::Suppression {
                        scope: crate::domain::SuppressionScope::parse(&channel).map_err(corrupt)?,
                        reason: crate::domain::SuppressionReason::parse(&reason)
                            .map_err(corrupt)?,
                        address,
                        source,
                        created_at,
                    })
                })
                .collect()
        })
    }
}
