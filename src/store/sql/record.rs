//! Recording a batch of outcomes: the statements of thousands of parameters
//! that the worker's throughput depends on.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::dialect::Placeholders;
use super::{on_pool, SqlStore};
use crate::store::{StoreResult, LATENCY_BUCKETS_MS};

/// increment, next attempt, permanent, provider, provider reference, code,
/// reason, sent at, finished at.
const OUTCOME_COLUMNS: &str =
    "mid, epoch, new_status, inc, next_at, perm, prov, pref, pcode, preason, sent, fin, segs";
/// Their types, in the same order.
const OUTCOME_TYPES: [&str; 13] = [
    "BIGINT", "BIGINT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT",
    "BIGINT", "BIGINT", "BIGINT",
];

/// Outcomes recorded per statement: a whole batch of the recorder.
pub(super) const OUTCOME_CHUNK: usize = crate::store::RECORD_BATCH;

/// The statement that applies `rows` outcomes (a power of two, at most
/// [`OUTCOME_CHUNK`]) to the messages whose lease still holds; binds: the
/// rows' OUTCOME_COLUMNS, then `now`. Padding rows have no message id and
/// match nothing. Built once per shape: the database caches statements by
/// their text, and formatting thousands of placeholders for every batch cost
/// more than binding the values (see docs/BENCHMARKS.md).
pub(super) fn record_outcomes_sql(rows: usize, style: Placeholders) -> &'static str {
    static SHAPES: Shapes = Shapes::new();
    SHAPES.get(rows, style, || {
        format!(
            "WITH v({OUTCOME_COLUMNS}) AS (VALUES {}) {RECORD_OUTCOMES}{} \
             FROM v WHERE messages.id = v.mid AND messages.lease_epoch = v.epoch \
             AND messages.status = 'sending' RETURNING id, lease_epoch, attempts",
            typed_rows(rows, &OUTCOME_TYPES, style),
            style.nth(rows * OUTCOME_TYPES.len() + 1)
        )
    })
}

/// The statement that adds `rows` attempts (a power of two); binds: each
/// row's message, attempt, provider, outcome, code, reason and latency, then
/// `now` and the worker. Padding rows have no message id and are skipped.
pub(super) fn record_attempts_sql(rows: usize, style: Placeholders) -> &'static str {
    static SHAPES: Shapes = Shapes::new();
    SHAPES.get(rows, style, || {
        let types = ["BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT"];
        let now = rows * types.len() + 1;
        format!(
            "WITH a(mid, attempt, provider, outcome, code, reason, latency) AS (VALUES {}) \
             INSERT INTO attempts (message_id, attempt, at, provider, outcome, code, reason, worker, latency_ms) \
             SELECT mid, attempt, {}, provider, outcome, code, reason, {}, latency FROM a WHERE mid IS NOT NULL",
            typed_rows(rows, &types, style),
            style.nth(now),
            style.nth(now + 1)
        )
    })
}

/// Attempts of a batch summed by provider, outcome and latency bucket (see
/// [`latency_bucket`]): how many, and their latencies' sum in ms. Ordered, so
/// that concurrent workers update the sums' rows in the same order.
pub(super) type AttemptTotals<'a> = BTreeMap<(&'a str, &'static str, i64), (i64, i64)>;

/// The bucket of `attempt_totals` a latency falls in: the first of
/// [`LATENCY_BUCKETS_MS`] it fits in, their count above the last, -1 when the
/// send was not timed.
pub(super) fn latency_bucket(latency_ms: Option<i64>) -> i64 {
    match latency_ms {
        None => -1,
        Some(ms) => LATENCY_BUCKETS_MS
            .iter()
            .position(|le| ms <= *le)
            .unwrap_or(LATENCY_BUCKETS_MS.len()) as i64,
    }
}

/// The statement that adds `rows` groups of [`AttemptTotals`] to their sums;
/// binds: each group's provider, outcome, bucket, attempts and latency sum.
pub(super) fn add_attempt_totals_sql(rows: usize, style: Placeholders) -> String {
    format!(
        "INSERT INTO attempt_totals (provider, outcome, bucket, attempts, latency_ms_sum) VALUES {} \
         ON CONFLICT (provider, outcome, bucket) DO UPDATE SET \
         attempts = attempt_totals.attempts + excluded.attempts, \
         latency_ms_sum = attempt_totals.latency_ms_sum + excluded.latency_ms_sum",
        typed_rows(rows, &["TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT"], style)
    )
}

/// One statement's text per placeholder style and padded size (a power of
/// two up to [`OUTCOME_CHUNK`]'s), each built the first time it is needed.
struct Shapes([[OnceLock<String>; OUTCOME_SHAPES]; 2]);

impl Shapes {
    const fn new() -> Shapes {
        Shapes([const { [const { OnceLock::new() }; OUTCOME_SHAPES] }; 2])
    }

    fn get(
        &'static self,
        rows: usize,
        style: Placeholders,
        build: impl FnOnce() -> String,
    ) -> &'static str {
        debug_assert!(rows.is_power_of_two() && (rows.trailing_zeros() as usize) < OUTCOME_SHAPES);
        self.0[style as usize][rows.trailing_zeros() as usize].get_or_init(build)
    }
}

/// Statement sizes: one per power of two up to [`OUTCOME_CHUNK`]'s.
const OUTCOME_SHAPES: usize = OUTCOME_CHUNK.next_power_of_two().trailing_zeros() as usize + 1;

/// `rows` rows of placeholders in `style`, each cast to its column's type so
/// that both databases know the types of a VALUES list of parameters.
fn typed_rows(rows: usize, types: &[&str], style: Placeholders) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(rows * types.len() * 24);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for (column, ty) in types.iter().enumerate() {
            if column > 0 {
                sql.push_str(", ");
            }
            let n = row * types.len() + column + 1;
            let _ = write!(sql, "CAST({} AS {ty})", style.nth(n));
        }
        sql.push(')');
    }
    sql
}

/// Applies the outcomes in `v` (OUTCOME_COLUMNS); followed by the placeholder
/// of `now` and the join condition.
const RECORD_OUTCOMES: &str = "UPDATE messages SET \
     status = CASE WHEN v.new_status = 'requeue' THEN (CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END) \
     ELSE v.new_status END, \
     attempts = attempts + v.inc, next_attempt_at = COALESCE(v.next_at, next_attempt_at), \
     permanent = v.perm, provider = COALESCE(v.prov, provider), provider_ref = COALESCE(v.pref, provider_ref), \
     last_code = COALESCE(v.pcode, last_code), last_reason = COALESCE(v.preason, last_reason), \
     sent_at = COALESCE(v.sent, sent_at), finished_at = COALESCE(v.fin, finished_at), \
     segments = COALESCE(v.segs, segments), lease_owner = NULL, lease_expires_at = NULL, updated_at = ";

/// The bind values of one outcome in [`RECORD_OUTCOMES`].
pub(super) struct OutcomeBinds {
    pub status: &'static str,
    pub increment: i64,
    pub next_attempt_at: Option<i64>,
    pub permanent: i64,
    pub provider_ref: Option<String>,
    pub sent_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempt_outcome: Option<&'static str>,
    /// SMS segments a gateway accepted.
    pub segments: Option<i64>,
}

pub(super) fn outcome_binds(o: &crate::campaigns::Outcome, now: i64) -> OutcomeBinds {
    use crate::campaigns::OutcomeKind;
    let base = OutcomeBinds {
        status: "requeue",
        increment: 0,
        next_attempt_at: None,
        permanent: 0,
        provider_ref: None,
        sent_at: None,
        finished_at: None,
        attempt_outcome: None,
        segments: None,
    };
    match &o.kind {
        OutcomeKind::Sent {
            provider_ref,
            segments,
        } => OutcomeBinds {
            status: "sent",
            increment: 1,
            provider_ref: provider_ref.clone(),
            segments: *segments,
            sent_at: Some(now),
            attempt_outcome: Some("sent"),
            ..base
        },
        OutcomeKind::Retry { next_attempt_at } => OutcomeBinds {
            status: "retrying",
            increment: 1,
            next_attempt_at: Some(*next_attempt_at),
            attempt_outcome: Some("temporary"),
            ..base
        },
        OutcomeKind::Failed { permanent, .. } => OutcomeBinds {
            status: "failed",
            increment: 1,
            permanent: i64::from(*permanent),
            finished_at: Some(now),
            attempt_outcome: Some(if *permanent { "permanent" } else { "exhausted" }),
            ..base
        },
        OutcomeKind::Deferred { next_attempt_at } => OutcomeBinds {
            next_attempt_at: Some(*next_attempt_at),
            ..base
        },
        OutcomeKind::Expired => OutcomeBinds {
            status: "expired",
            finished_at: Some(now),
            ..base
        },
    }
}

impl SqlStore {
    /// Records outcomes in one transaction, each only if its lease still holds.
    pub(super) async fn write_outcomes(
        &self,
        worker: &str,
        outcomes: &[crate::campaigns::Outcome],
        now: i64,
    ) -> StoreResult<crate::campaigns::RecordReport> {
        on_pool!(&self.pool, |pool| {
            let mut report = crate::campaigns::RecordReport::default();
            let mut totals = AttemptTotals::new();
            let mut tx = pool.begin().await?;
            // Two statements per chunk, not several per message: each
            // statement is a round trip to the database. A chunk's rows are
            // padded with empty ones up to a power of two, so the statements
            // come in a few shapes that stay prepared: a batch's size varies,
            // and preparing a statement of hundreds of rows anew for every
            // batch cost more than executing it (see docs/BENCHMARKS.md).
            for chunk in outcomes.chunks(OUTCOME_CHUNK) {
                let binds: Vec<OutcomeBinds> =
                    chunk.iter().map(|o| outcome_binds(o, now)).collect();
                let rows = chunk.len().next_power_of_two();
                let mut q = sqlx::query_as::<_, (i64, i64, i64)>(record_outcomes_sql(
                    rows,
                    self.dialect().placeholders,
                ));
                for i in 0..rows {
                    let row = chunk.get(i).zip(binds.get(i));
                    q = q
                        .bind(row.map(|(o, _)| o.message_id))
                        .bind(row.map(|(o, _)| o.lease_epoch))
                        .bind(row.map(|(_, b)| b.status))
                        .bind(row.map(|(_, b)| b.increment))
                        .bind(row.and_then(|(_, b)| b.next_attempt_at))
                        .bind(row.map(|(_, b)| b.permanent))
                        .bind(row.map(|(o, _)| o.provider.as_str()))
                        .bind(row.and_then(|(_, b)| b.provider_ref.as_deref()))
                        .bind(row.and_then(|(o, _)| o.code.as_deref()))
                        .bind(row.and_then(|(o, _)| o.reason.as_deref()))
                        .bind(row.and_then(|(_, b)| b.sent_at))
                        .bind(row.and_then(|(_, b)| b.finished_at))
                        .bind(row.and_then(|(_, b)| b.segments));
                }
                let updated = q.bind(now).fetch_all(&mut *tx).await?;
                report.recorded += updated.len() as u64;
                report.lost_lease += (chunk.len() - updated.len()) as u64;
                // By message and claim: a stale outcome of the same message
                // in the same batch gets no attempt of its own.
                let attempt_of: std::collections::HashMap<(i64, i64), i64> = updated
                    .into_iter()
                    .map(|(id, epoch, attempts)| ((id, epoch), attempts))
                    .collect();

                let attempts: Vec<(&crate::campaigns::Outcome, &'static str, i64)> = chunk
                    .iter()
                    .zip(&binds)
                    .filter_map(|(o, b)| {
                        let attempt = attempt_of.get(&(o.message_id, o.lease_epoch))?;
                        Some((o, b.attempt_outcome?, *attempt))
                    })
                    .collect();
                if !attempts.is_empty() {
                    let rows = attempts.len().next_power_of_two();
                    let mut q = sqlx::query(record_attempts_sql(rows, self.dialect().placeholders));
                    for i in 0..rows {
                        let row = attempts.get(i);
                        q = q
                            .bind(row.map(|(o, _, _)| o.message_id))
                            .bind(row.map(|(_, _, attempt)| *attempt))
                            .bind(row.map(|(o, _, _)| o.provider.as_str()))
                            .bind(row.map(|(_, outcome, _)| *outcome))
                            .bind(row.and_then(|(o, _, _)| o.code.as_deref()))
                            .bind(row.and_then(|(o, _, _)| o.reason.as_deref()))
                            .bind(row.and_then(|(o, _, _)| o.latency_ms));
                    }
                    q.bind(now).bind(worker).execute(&mut *tx).await?;
                }
                for (o, outcome, _) in &attempts {
                    let key = (o.provider.as_str(), *outcome, latency_bucket(o.latency_ms));
                    let (n, sum_ms) = totals.entry(key).or_default();
                    *n += 1;
                    *sum_ms += o.latency_ms.unwrap_or(0);
                }
                for o in chunk
                    .iter()
                    .filter(|o| attempt_of.contains_key(&(o.message_id, o.lease_epoch)))
                {
                    if let crate::campaigns::OutcomeKind::Failed {
                        suppress: Some((address, scope, reason)),
                        ..
                    } = &o.kind
                    {
                        sqlx::query(
                            "INSERT INTO suppressions (address, channel, reason, source, created_at) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (address, channel) DO NOTHING",
                        )
                        .bind(address.to_lowercase())
                        .bind(scope.code())
                        .bind(reason.code())
                        .bind(format!("provider:{}", o.provider))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            // Delivery reports that arrived while these messages were in flight.
            let pending: Option<i64> =
                sqlx::query_scalar("SELECT message_id FROM receipts WHERE applied = 0 LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            if pending.is_some() {
                for sql in super::receipts::APPLY_PENDING {
                    sqlx::query(sql).bind(now).execute(&mut *tx).await?;
                }
                sqlx::query(super::receipts::MARK_APPLIED)
                    .execute(&mut *tx)
                    .await?;
            }
            // Last: every worker adds to the same few rows, so each holds
            // them only while it commits, and never waits while holding them.
            if !totals.is_empty() {
                let sql = add_attempt_totals_sql(totals.len(), self.dialect().placeholders);
                let mut q = sqlx::query(&sql);
                for ((provider, outcome, bucket), (n, sum_ms)) in &totals {
                    q = q
                        .bind(*provider)
                        .bind(*outcome)
                        .bind(*bucket)
                        .bind(*n)
                        .bind(*sum_ms);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(report)
        })
    }
}
