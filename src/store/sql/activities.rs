//! Activities, their targets and the work recorded against them.

use async_trait::async_trait;

use super::{on_pool, SqlStore};
use crate::campaigns::{Activity, ActivitySplit};
use crate::domain::ChannelKind;
use crate::store::{ActivityStore, StoreError, StoreResult};

/// An `activities` row, undecoded: the channel and split are text there.
#[derive(sqlx::FromRow)]
struct ActivityRow {
    id: i64,
    code: String,
    name: String,
    channel: Option<String>,
    programmed: i64,
    period_from: Option<String>,
    period_to: Option<String>,
    split: String,
    created_at: i64,
}

impl ActivityRow {
    /// The typed activity, or `Corrupt` naming the activity and the column.
    fn decode(self) -> StoreResult<Activity> {
        let corrupt = |field: &str, e: crate::domain::Invalid| {
            StoreError::Corrupt(format!("activity {}, {field}: {e}", self.code))
        };
        let channel = match &self.channel {
            Some(c) => Some(ChannelKind::parse(c).map_err(|e| corrupt("channel", e))?),
            None => None,
        };
        let split = ActivitySplit::parse(&self.split).map_err(|e| corrupt("split", e))?;
        Ok(Activity {
            id: self.id,
            code: self.code,
            name: self.name,
            channel,
            programmed: self.programmed,
            period_from: self.period_from,
            period_to: self.period_to,
            split,
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl ActivityStore for SqlStore {
    async fn create_activity(
        &self,
        a: &crate::campaigns::NewActivity,
        now: i64,
    ) -> StoreResult<i64> {
        on_pool!(&self.pool, |pool| {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO activities (code, name, channel, programmed, period_from, period_to, split, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO NOTHING RETURNING id",
            )
            .bind(&a.code)
            .bind(&a.name)
            .bind(a.channel.map(|c| c.code()))
            .bind(a.programmed)
            .bind(&a.period_from)
            .bind(&a.period_to)
            .bind(a.split.code())
            .bind(now)
            .fetch_optional(pool)
            .await?;
            id.ok_or_else(|| StoreError::Conflict(format!("activity {:?} already exists", a.code)))
        })
    }

    async fn activity(&self, code: &str) -> StoreResult<Option<Activity>> {
        let row: Option<ActivityRow> = on_pool!(&self.pool, |pool| {
            sqlx::query_as("SELECT * FROM activities WHERE code = $1")
                .bind(code)
                .fetch_optional(pool)
                .await
        })?;
        row.map(ActivityRow::decode).transpose()
    }

    async fn activities(&self) -> StoreResult<Vec<Activity>> {
        let rows: Vec<ActivityRow> = on_pool!(&self.pool, |pool| {
            sqlx::query_as("SELECT * FROM activities ORDER BY id")
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(ActivityRow::decode).collect()
    }

    async fn set_activity_targets(
        &self,
        activity_id: i64,
        targets: &[(String, i64)],
    ) -> StoreResult<()> {
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM activity_targets WHERE activity_id = $1")
                .bind(activity_id)
                .execute(&mut *tx)
                .await?;
            for (entity, programmed) in targets {
                sqlx::query("INSERT INTO activity_targets (activity_id, entity, programmed) VALUES ($1, $2, $3)")
                    .bind(activity_id)
                    .bind(entity)
                    .bind(programmed)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn activity_targets(&self) -> StoreResult<Vec<crate::store::ActivityTarget>> {
        on_pool!(&self.pool, |pool| {
            Ok(sqlx::query_as("SELECT activity_id, entity, programmed FROM activity_targets ORDER BY activity_id, entity")
                .fetch_all(pool)
                .await?)
        })
    }

    async fn record_activity(
        &self,
        activity_id: i64,
        done: i64,
        date: &str,
        note: Option<&str>,
        now: i64,
    ) -> StoreResult<i64> {
        on_pool!(&self.pool, |pool| {
            Ok(sqlx::query_scalar(
                "INSERT INTO activity_records (activity_id, done, date, note, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(activity_id)
            .bind(done)
            .bind(date)
            .bind(note)
            .bind(now)
            .fetch_one(pool)
            .await?)
        })
    }

    async fn activity_records(&self) -> StoreResult<Vec<crate::store::ActivityRecord>> {
        on_pool!(&self.pool, |pool| {
            Ok(
                sqlx::query_as("SELECT activity_id, done, date FROM activity_records ORDER BY id")
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    async fn record_call_attempts(
        &self,
        activity_id: i64,
        attempts: &[crate::calls::CallAttempt],
        source: &str,
        now: i64,
    ) -> StoreResult<u64> {
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let mut new_by_date: std::collections::BTreeMap<String, i64> = Default::default();
            for a in attempts {
                let inserted = sqlx::query(
                    "INSERT INTO call_attempts (activity_id, key, contact_id, phone, date, outcome, source, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (activity_id, key) DO NOTHING",
                )
                .bind(activity_id)
                .bind(&a.key)
                .bind(&a.contact_id)
                .bind(a.phone.as_ref().map(|p| p.as_str()))
                .bind(a.date.to_string())
                .bind(&a.outcome)
                .bind(source)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted > 0 {
                    *new_by_date.entry(a.date.to_string()).or_default() += 1;
                }
            }
            // The indicator counts activity records: the new attempts are
            // added there, by day, in the same transaction.
            for (date, done) in &new_by_date {
                sqlx::query(
                    "INSERT INTO activity_records (activity_id, done, date, note, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(activity_id)
                .bind(done)
                .bind(date)
                .bind(source)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(new_by_date.values().sum::<i64>() as u64)
        })
    }
}
