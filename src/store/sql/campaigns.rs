//! Campaigns: their definition, state, schedule and frequency cap.

use async_trait::async_trait;

use super::campaign_rows::{
    decode_all, placeholders, CampaignColumns, CampaignRow, RecurrenceColumns,
};
use super::{on_pool, SqlStore};
use crate::store::{CampaignStore, StoreError, StoreResult};

/// Campaign rows with their activity's code and list's name.
pub(super) const CAMPAIGN_SELECT: &str = "SELECT c.id, c.activity_id, a.code AS activity_code, \
     c.name, c.template, c.channel, c.list_id, l.name AS list_name, c.segment, c.lang_mode, \
     c.provider, c.vars, c.attachments, c.state, c.pause_reason, c.start_at, c.recurrence, \
     c.recur_day, c.recur_time, c.recur_until, c.window_start, c.window_end, c.expires_at, c.expires_after, \
     c.budget_micros, c.created_at, c.updated_at \
     FROM campaigns c JOIN activities a ON a.id = c.activity_id JOIN lists l ON l.id = c.list_id";

#[async_trait]
impl CampaignStore for SqlStore {
    async fn create_campaign(
        &self,
        c: &crate::campaigns::NewCampaign,
        now: i64,
    ) -> StoreResult<i64> {
        let cols = CampaignColumns::of(c);
        on_pool!(&self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO campaigns (activity_id, name, template, channel, list_id, segment, \
                 lang_mode, provider, vars, attachments, state, start_at, recurrence, recur_day, \
                 recur_time, recur_until, window_start, window_end, expires_at, expires_after, budget_micros, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22) \
                 RETURNING id",
            )
            .bind(c.activity_id)
            .bind(&c.name)
            .bind(&c.template)
            .bind(cols.channel)
            .bind(c.list_id)
            .bind(&cols.segment)
            .bind(cols.lang_mode)
            .bind(&c.provider)
            .bind(&cols.vars)
            .bind(&cols.attachments)
            .bind(cols.state)
            .bind(c.start_at)
            .bind(cols.recurrence.recurrence)
            .bind(cols.recurrence.day)
            .bind(&cols.recurrence.time)
            .bind(c.recur_until)
            .bind(&cols.window_start)
            .bind(&cols.window_end)
            .bind(c.expires_at)
            .bind(c.expires_after)
            .bind(c.budget_micros)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if let Some(policy) = &c.frequency_cap {
                sqlx::query(
                    "INSERT INTO campaign_caps (campaign_id, cap_count, period_ms, when_capped) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(i64::from(policy.cap.count()))
                .bind(policy.cap.period_ms())
                .bind(policy.when.code())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    async fn campaign(&self, id: i64) -> StoreResult<Option<crate::campaigns::Campaign>> {
        on_pool!(&self.pool, |pool| {
            let sql = format!("{} WHERE c.id = $1", CAMPAIGN_SELECT);
            sqlx::query_as::<_, CampaignRow>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(CampaignRow::decode)
                .transpose()
        })
    }

    async fn campaigns(&self) -> StoreResult<Vec<crate::campaigns::Campaign>> {
        on_pool!(&self.pool, |pool| {
            let sql = format!("{} ORDER BY c.id", CAMPAIGN_SELECT);
            decode_all(sqlx::query_as(&sql).fetch_all(pool).await?)
        })
    }

    async fn campaigns_in(
        &self,
        states: &[crate::campaigns::CampaignState],
    ) -> StoreResult<Vec<crate::campaigns::Campaign>> {
        on_pool!(&self.pool, |pool| {
            if states.is_empty() {
                return Ok(Vec::new());
            }
            let mut q = sqlx::QueryBuilder::new(CAMPAIGN_SELECT);
            q.push(" WHERE c.state IN (");
            let mut sep = q.separated(", ");
            for state in states {
                sep.push_bind(state.code());
            }
            q.push(") ORDER BY c.id");
            decode_all(q.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn set_campaign_state(
        &self,
        id: i64,
        from: &[crate::campaigns::CampaignState],
        to: crate::campaigns::CampaignState,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        on_pool!(&self.pool, |pool| {
            if from.is_empty() {
                return Ok(false);
            }
            let mut q = sqlx::QueryBuilder::new("UPDATE campaigns SET state = ");
            q.push_bind(to.code())
                .push(", pause_reason = ")
                .push_bind(reason.map(str::to_string))
                .push(", updated_at = ")
                .push_bind(now)
                .push(" WHERE id = ")
                .push_bind(id)
                .push(" AND state IN (");
            let mut sep = q.separated(", ");
            for state in from {
                sep.push_bind(state.code());
            }
            q.push(")");
            Ok(q.build().execute(pool).await?.rows_affected() == 1)
        })
    }

    async fn update_schedule(
        &self,
        id: i64,
        schedule: &crate::campaigns::CampaignSchedule,
        from: &[crate::campaigns::CampaignState],
        now: i64,
    ) -> StoreResult<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let recurrence = RecurrenceColumns::of(schedule.recurrence.as_ref());
        let sql = format!(
            "UPDATE campaigns SET start_at = $1, recurrence = $2, recur_day = $3, recur_time = $4, \
             recur_until = $5, state = 'scheduled', updated_at = $6 \
             WHERE id = $7 AND state IN ({})",
            placeholders(8, from.len())
        );
        on_pool!(&self.pool, |pool| {
            let mut q = sqlx::query(&sql)
                .bind(schedule.start_at)
                .bind(recurrence.recurrence)
                .bind(recurrence.day)
                .bind(&recurrence.time)
                .bind(schedule.recur_until)
                .bind(now)
                .bind(id);
            for state in from {
                q = q.bind(state.code());
            }
            Ok(q.execute(pool).await?.rows_affected() == 1)
        })
    }

    async fn frequency_cap(
        &self,
        campaign_id: i64,
    ) -> StoreResult<Option<crate::domain::CapPolicy>> {
        on_pool!(&self.pool, |pool| {
            let row: Option<(i64, i64, String)> = sqlx::query_as(
                "SELECT cap_count, period_ms, when_capped FROM campaign_caps WHERE campaign_id = $1",
            )
            .bind(campaign_id)
            .fetch_optional(pool)
            .await?;
            let Some((count, period_ms, when)) = row else {
                return Ok(None);
            };
            let corrupt = |e: crate::domain::Invalid| {
                StoreError::Corrupt(format!("frequency cap of campaign {campaign_id}: {e}"))
            };
            let count = u32::try_from(count)
                .map_err(|_| corrupt(crate::domain::Invalid(format!("count {count}"))))?;
            Ok(Some(crate::domain::CapPolicy {
                cap: crate::domain::FrequencyCap::new(count, period_ms).map_err(corrupt)?,
                when: crate::domain::WhenCapped::parse(&when).map_err(corrupt)?,
            }))
        })
    }
}
