//! The part of the [`Store`](super::Store) implementation that both backends
//! share: SQL that SQLite and PostgreSQL read the same way (numbered `$n`
//! placeholders, `ON CONFLICT`, `RETURNING`, `COUNT(column)`), written once and
//! compiled for each backend's concrete types by [`portable_store!`]. The
//! statements of thousands of parameters that record outcomes are the
//! exception: SQLite gets positional `?` there (see [`Placeholders`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::contacts::Contact;
use crate::domain::{
    ContactKind, Country, Credential, EmailAddress, Entity, Invalid, Language, Modality,
    PhoneNumber, Population,
};

use super::{ContactCounts, LatencyRow, StoreError, LATENCY_BUCKETS_MS};

/// The contact columns, in the order [`contact_from_columns`] expects them.
pub(super) const CONTACT_COLUMNS: &str = "id, kind, first_name, last_name, entity, country, \
     email, phone, language, credential, population, modality";

fn stored<T>(id: &str, field: &str, value: Result<T, Invalid>) -> Result<T, StoreError> {
    value.map_err(|e| StoreError::Corrupt(format!("contact {id}, {field}: {e}")))
}

fn optional<T>(
    id: &str,
    field: &str,
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, Invalid>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| stored(id, field, parse(&v))).transpose()
}

/// Reads a row of `CONTACT_COLUMNS` into a contact.
pub(super) fn contact_from_row<R>(row: &R) -> Result<Contact, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut columns: [Option<String>; 12] = Default::default();
    for (i, column) in columns.iter_mut().enumerate() {
        *column = row.try_get(i)?;
    }
    contact_from_columns(columns)
}

/// Rebuilds a contact from its stored columns, re-checking every value so that
/// a hand-edited database cannot smuggle an invalid address into a send.
fn contact_from_columns(c: [Option<String>; 12]) -> Result<Contact, StoreError> {
    let [id, kind, first_name, last_name, entity, country, email, phone, language, credential, population, modality] =
        c;
    let id = id.unwrap_or_default();
    let kind = stored(
        &id,
        "kind",
        ContactKind::parse(kind.as_deref().unwrap_or("")),
    )?;
    Ok(Contact {
        kind,
        first_name,
        last_name,
        entity: optional(&id, "entity", entity, Entity::parse)?,
        country: optional(&id, "country", country, Country::parse)?,
        email: optional(&id, "email", email, EmailAddress::parse)?,
        phone: optional(&id, "phone", phone, |p| PhoneNumber::parse(p, None))?,
        language: stored(
            &id,
            "language",
            Language::parse(language.as_deref().unwrap_or("es")),
        )?,
        credential: optional(&id, "credential", credential, Credential::parse)?,
        population: optional(&id, "population", population, Population::parse)?,
        modality: optional(&id, "modality", modality, Modality::parse)?,
        id,
    })
}

/// Folds `(entity, language, kind, count, with phone, with e-mail)` groups into counts.
pub(super) fn fold_counts(
    groups: impl IntoIterator<Item = (Option<String>, String, String, i64, i64, i64)>,
) -> ContactCounts {
    let mut counts = ContactCounts::default();
    let add = |map: &mut BTreeMap<String, i64>, key: String, n: i64| {
        *map.entry(key).or_default() += n;
    };
    for (entity, language, kind, n, sms, email) in groups {
        counts.total += n;
        counts.by_channel.sms += sms;
        counts.by_channel.email += email;
        add(
            &mut counts.by_entity,
            entity.unwrap_or_else(|| "none".into()),
            n,
        );
        add(&mut counts.by_language, language, n);
        add(&mut counts.by_kind, kind, n);
    }
    counts
}

fn opt_string<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(|x| x.to_string())
}

/// The values of a contact row, in `CONTACT_COLUMNS` order plus the hash.
pub(super) fn contact_values(c: &Contact) -> [Option<String>; 13] {
    [
        Some(c.id.clone()),
        Some(c.kind.to_string()),
        c.first_name.clone(),
        c.last_name.clone(),
        opt_string(&c.entity),
        opt_string(&c.country),
        opt_string(&c.email),
        opt_string(&c.phone),
        Some(c.language.to_string()),
        opt_string(&c.credential),
        opt_string(&c.population),
        opt_string(&c.modality),
        Some(c.content_hash()),
    ]
}

/// The message columns a claim returns, in `ClaimedMessage` order.
pub(super) const CLAIMED_COLUMNS: &str = "id, run_id, campaign_id, contact_id, channel, address, \
     kind, first_name, last_name, entity, country, language, credential, population, modality, \
     attempts, lease_epoch";

/// Leases due messages of a running campaign; binds: worker, lease expiry,
/// now, campaign, limit. `lock` is the backend's row-locking clause.
pub(super) fn claim_sql(lock: &str) -> String {
    format!(
        "UPDATE messages SET status = 'sending', lease_owner = $1, lease_expires_at = $2, \
         lease_epoch = lease_epoch + 1, updated_at = $3 \
         WHERE id IN (SELECT id FROM messages WHERE campaign_id = $4 \
           AND status IN ('queued', 'retrying') AND next_attempt_at <= $3 \
           AND EXISTS (SELECT 1 FROM campaigns WHERE id = $4 AND state = 'running') \
           LIMIT $5{lock}) \
         RETURNING {CLAIMED_COLUMNS}"
    )
}

/// Campaign rows with their activity's code and list's name.
pub(super) const CAMPAIGN_SELECT: &str = "SELECT c.id, c.activity_id, a.code AS activity_code, \
     c.name, c.template, c.channel, c.list_id, l.name AS list_name, c.segment, c.lang_mode, \
     c.provider, c.vars, c.attachments, c.state, c.pause_reason, c.start_at, c.recurrence, \
     c.recur_day, c.recur_time, c.recur_until, c.window_start, c.window_end, c.expires_at, c.expires_after, \
     c.budget_micros, c.created_at, c.updated_at \
     FROM campaigns c JOIN activities a ON a.id = c.activity_id JOIN lists l ON l.id = c.list_id";

/// The columns of the outcomes table a batch is recorded from: message,
/// lease epoch, new status (or `requeue`: back to queued/retrying), attempt
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
pub(super) const OUTCOME_CHUNK: usize = crate::dispatch::RECORD_BATCH;

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

/// The latency histogram by provider, from `attempt_totals` rows of timed
/// attempts (provider, bucket, attempts, latency sum).
pub(super) fn latency_rows(
    rows: impl IntoIterator<Item = (String, i64, i64, i64)>,
) -> Vec<LatencyRow> {
    let mut histogram: BTreeMap<String, LatencyRow> = BTreeMap::new();
    for (provider, bucket, attempts, sum_ms) in rows {
        let row = histogram
            .entry(provider)
            .or_insert_with_key(|provider| LatencyRow {
                provider: provider.clone(),
                buckets: vec![0; LATENCY_BUCKETS_MS.len()],
                count: 0,
                sum_ms: 0,
            });
        row.count += attempts;
        row.sum_ms += sum_ms;
        // Cumulative: an attempt counts in its own bucket and every larger one.
        let first = usize::try_from(bucket).unwrap_or(0);
        for counted in row.buckets.iter_mut().skip(first) {
            *counted += attempts;
        }
    }
    histogram.into_values().collect()
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

/// How a backend's statements write their bind parameters.
#[derive(Clone, Copy)]
pub(super) enum Placeholders {
    /// `?`, bound in order of appearance: SQLite finds a numbered (`$1`)
    /// parameter's position by scanning the names of all of them, which in a
    /// statement of thousands took longer than everything else the worker does.
    Positional = 0,
    /// `$1`, `$2`… (PostgreSQL).
    Numbered = 1,
}

impl Placeholders {
    /// The `n`-th parameter (from 1), which must be written in order.
    fn nth(self, n: usize) -> String {
        match self {
            Placeholders::Positional => "?".to_string(),
            Placeholders::Numbered => format!("${n}"),
        }
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

/// Applies the delivery reports kept while their messages were in flight:
/// delivered wins over failed, and a report never undoes a delivery.
pub(super) async fn apply_pending_receipts<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    now: i64,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    const STATEMENTS: [&str; 3] = [
        "UPDATE messages SET status = 'delivered', delivered_at = $1, updated_at = $1 \
         WHERE status IN ('sent', 'failed') AND sent_at IS NOT NULL AND id IN \
         (SELECT message_id FROM receipts WHERE applied = 0 AND status = 'delivered')",
        "UPDATE messages SET status = 'failed', finished_at = $1, updated_at = $1 \
         WHERE status = 'sent' AND id IN \
         (SELECT message_id FROM receipts WHERE applied = 0 AND status = 'failed')",
        "UPDATE receipts SET applied = 1 WHERE applied = 0 AND message_id IN \
         (SELECT id FROM messages WHERE status <> 'sending') AND $1 = $1",
    ];
    for sql in STATEMENTS {
        sqlx::query(sql).bind(now).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The contact column holding a channel's address.
pub(super) fn address_column(channel: crate::domain::ChannelKind) -> &'static str {
    match channel {
        crate::domain::ChannelKind::Sms => "phone",
        crate::domain::ChannelKind::Email => "email",
    }
}

macro_rules! portable_store {
    ($store:ty, $db:ty, $name:literal, $claim_lock:literal, $insert_or_fail:literal, $defer_foreign_keys:literal, $placeholders:expr) => {
        impl $store {
            /// Writes contacts and list memberships in one transaction;
            /// `upsert`: contacts already stored are updated, else they are an
            /// error. Rows go in a thousand per statement. On SQLite, statements
            /// that cannot abort halfway (`OR FAIL`, foreign keys checked at
            /// commit) run without a statement journal, which copied every page
            /// they touched (a tenth of a large import's database time).
            async fn write_contacts(
                &self,
                list_id: i64,
                contacts: &[$crate::contacts::Contact],
                members: &[String],
                now: i64,
                upsert: bool,
            ) -> StoreResult<()> {
                let contact_rows = |chunk: &[$crate::contacts::Contact]| {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "{} INTO contacts ({}, row_hash, created_at, updated_at) ",
                        $insert_or_fail,
                        super::portable::CONTACT_COLUMNS
                    ));
                    q.push_values(chunk, |mut row, contact| {
                        for value in super::portable::contact_values(contact) {
                            row.push_bind(value);
                        }
                        row.push_bind(now).push_bind(now);
                    });
                    if upsert {
                        q.push(
                            " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
                             first_name = excluded.first_name, last_name = excluded.last_name, \
                             entity = excluded.entity, country = excluded.country, \
                             email = excluded.email, phone = excluded.phone, \
                             language = excluded.language, credential = excluded.credential, \
                             population = excluded.population, modality = excluded.modality, \
                             row_hash = excluded.row_hash, updated_at = excluded.updated_at",
                        );
                    }
                    q
                };
                // Inline, so the member ids are bound borrowed from `members`.
                let mut statements = contacts.chunks(1000).map(contact_rows).chain(
                    members.chunks(5000).map(|chunk| {
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "{} INTO list_members (list_id, contact_id, added_at) ",
                            $insert_or_fail
                        ));
                        q.push_values(chunk, |mut row, id| {
                            row.push_bind(list_id).push_bind(id).push_bind(now);
                        });
                        q.push(" ON CONFLICT (list_id, contact_id) DO NOTHING");
                        q
                    }),
                );
                let mut tx = self.pool.begin().await?;
                sqlx::query($defer_foreign_keys).execute(&mut *tx).await?;
                let mut next = statements.next();
                while let Some(mut statement) = next.take() {
                    // The next statement is built (thousands of values bound)
                    // while the database runs this one: an import's writing
                    // side is otherwise one thread waiting on the other.
                    let (done, following) = tokio::join!(
                        statement.build().execute(&mut *tx),
                        async { statements.next() }
                    );
                    done?;
                    next = following;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Audience members (in the list and segment, with an address for
            /// the channel, or without one: `address`) with an id after
            /// `after`, in `order`.
            async fn audience(
                &self,
                list_id: i64,
                segment: &$crate::contacts::Segment,
                address: (&$crate::domain::ChannelKind, bool),
                after: &str,
                order: &str,
                limit: i64,
            ) -> StoreResult<Vec<$crate::contacts::Contact>> {
                let (channel, with_address) = address;
                let address = super::portable::address_column(*channel);
                let present = if with_address { "IS NOT NULL" } else { "IS NULL" };
                let (condition, binds) = segment.to_sql("c", 4);
                let columns = super::portable::CONTACT_COLUMNS
                    .split(", ")
                    .map(|c| format!("c.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {columns} FROM contacts c \
                     JOIN list_members lm ON lm.contact_id = c.id AND lm.list_id = $1 \
                     WHERE c.{address} {present} AND c.id > $3 AND {condition} \
                     ORDER BY {order} LIMIT $2"
                );
                let mut q = sqlx::query(&sql).bind(list_id).bind(limit).bind(after);
                for b in &binds {
                    q = q.bind(b);
                }
                let mut contacts = Vec::new();
                for row in q.fetch_all(&self.pool).await? {
                    contacts.push(super::portable::contact_from_row(&row)?);
                }
                Ok(contacts)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn ensure_list(&self, name: &str, now: i64) -> StoreResult<i64> {
                sqlx::query(
                    "INSERT INTO lists (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(now)
                .execute(&self.pool)
                .await?;
                let id: i64 = sqlx::query_scalar("SELECT id FROM lists WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(id)
            }

            async fn list_id(&self, name: &str) -> StoreResult<Option<i64>> {
                Ok(sqlx::query_scalar("SELECT id FROM lists WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn has_contacts(&self) -> StoreResult<bool> {
                let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM contacts LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(any.is_some())
            }

            async fn contact_hashes(
                &self,
                ids: &[String],
            ) -> StoreResult<std::collections::HashMap<String, String>> {
                let mut found = std::collections::HashMap::with_capacity(ids.len());
                // Bounded so both backends stay under their bind-parameter limits.
                for chunk in ids.chunks(5000) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, row_hash FROM contacts WHERE id IN (",
                    );
                    let mut sep = q.separated(", ");
                    for id in chunk {
                        sep.push_bind(id);
                    }
                    q.push(")");
                    let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&self.pool).await?;
                    found.extend(rows);
                }
                Ok(found)
            }

            async fn save_contacts(
                &self,
                list_id: i64,
                changed: &[$crate::contacts::Contact],
                members: &[String],
                now: i64,
            ) -> StoreResult<()> {
                self.write_contacts(list_id, changed, members, now, true).await
            }

            async fn insert_new_contacts(
                &self,
                list_id: i64,
                new: &[$crate::contacts::Contact],
                members: &[String],
                now: i64,
            ) -> StoreResult<()> {
                self.write_contacts(list_id, new, members, now, false).await
            }

            async fn contact(
                &self,
                id: &str,
            ) -> StoreResult<Option<$crate::contacts::ContactRecord>> {
                let sql = format!(
                    "SELECT {} FROM contacts WHERE id = $1",
                    super::portable::CONTACT_COLUMNS
                );
                let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await? else {
                    return Ok(None);
                };
                let contact = super::portable::contact_from_row(&row)?;
                let lists: Vec<String> = sqlx::query_scalar(
                    "SELECT l.name FROM lists l JOIN list_members m ON m.list_id = l.id \
                     WHERE m.contact_id = $1 ORDER BY l.name",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some($crate::contacts::ContactRecord { contact, lists }))
            }

            async fn count_contacts(
                &self,
                list_id: Option<i64>,
                segment: &$crate::contacts::Segment,
            ) -> StoreResult<$crate::store::ContactCounts> {
                let (condition, binds) = segment.to_sql("c", 2);
                let membership = if list_id.is_some() {
                    "JOIN list_members m ON m.contact_id = c.id AND m.list_id = $1"
                } else {
                    // Keeps $1 used so the numbering is the same either way.
                    "JOIN (SELECT CAST($1 AS BIGINT) AS unused) u ON 1 = 1"
                };
                let sql = format!(
                    "SELECT c.entity, c.language, c.kind, COUNT(*), COUNT(c.phone), COUNT(c.email) \
                     FROM contacts c {membership} WHERE {condition} \
                     GROUP BY c.entity, c.language, c.kind"
                );
                let mut q = sqlx::query_as::<_, (Option<String>, String, String, i64, i64, i64)>(&sql)
                    .bind(list_id.unwrap_or(0));
                for b in binds {
                    q = q.bind(b);
                }
                let groups = q.fetch_all(&self.pool).await?;
                Ok(super::portable::fold_counts(groups))
            }

            async fn sample_contacts(
                &self,
                list_id: i64,
                segment: &$crate::contacts::Segment,
                channel: $crate::domain::ChannelKind,
                limit: i64,
            ) -> StoreResult<Vec<$crate::contacts::Contact>> {
                let order = "LENGTH(COALESCE(c.first_name, '')) + LENGTH(COALESCE(c.last_name, '')) DESC, c.id";
                self.audience(list_id, segment, (&channel, true), "", order, limit).await
            }

            async fn audience_page(
                &self,
                list_id: i64,
                segment: &$crate::contacts::Segment,
                channel: $crate::domain::ChannelKind,
                after: &str,
                limit: i64,
            ) -> StoreResult<Vec<$crate::contacts::Contact>> {
                self.audience(list_id, segment, (&channel, true), after, "c.id", limit).await
            }

            async fn without_address_page(
                &self,
                list_id: i64,
                segment: &$crate::contacts::Segment,
                channel: $crate::domain::ChannelKind,
                after: &str,
                limit: i64,
            ) -> StoreResult<Vec<$crate::contacts::Contact>> {
                self.audience(list_id, segment, (&channel, false), after, "c.id", limit).await
            }

            async fn unreached_messages(
                &self,
                campaign_id: i64,
            ) -> StoreResult<Vec<$crate::store::Unreached>> {
                let columns = super::portable::CONTACT_COLUMNS
                    .split(", ")
                    .map(|c| format!("c.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {columns}, m.status, m.last_reason FROM messages m \
                     JOIN contacts c ON c.id = m.contact_id \
                     WHERE m.campaign_id = $1 AND (m.status = 'failed' \
                     OR (m.status = 'suppressed' AND m.last_reason IN ('invalid', 'hard_bounce'))) \
                     ORDER BY m.id"
                );
                let mut out = Vec::new();
                for row in sqlx::query(&sql).bind(campaign_id).fetch_all(&self.pool).await? {
                    use sqlx::Row as _;
                    out.push($crate::store::Unreached {
                        contact: super::portable::contact_from_row(&row)?,
                        status: row.try_get(12)?,
                        reason: row.try_get(13)?,
                    });
                }
                Ok(out)
            }

            async fn record_call_attempts(
                &self,
                activity_id: i64,
                attempts: &[$crate::contacts::CallAttempt],
                source: &str,
                now: i64,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
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
            }

            async fn contacts_with_phone(
                &self,
                phone: &str,
            ) -> StoreResult<Vec<(String, Option<String>, Option<String>)>> {
                Ok(sqlx::query_as("SELECT id, email, phone FROM contacts WHERE phone = $1 ORDER BY id")
                    .bind(phone)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn add_suppressions(
                &self,
                items: &[$crate::store::Suppression],
            ) -> StoreResult<u64> {
                let mut added = 0;
                let mut tx = self.pool.begin().await?;
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
            }

            async fn suppressions(
                &self,
                scope: Option<$crate::domain::SuppressionScope>,
            ) -> StoreResult<Vec<$crate::store::Suppression>> {
                let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
                    "SELECT address, channel, reason, source, created_at FROM suppressions \
                     WHERE $1 = '' OR channel = $1 ORDER BY created_at, address",
                )
                .bind(scope.map(|s| s.code()).unwrap_or(""))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(address, channel, reason, source, created_at)| {
                        let corrupt = |e: $crate::domain::Invalid| {
                            StoreError::Corrupt(format!("suppression of {}: {e}", $crate::domain::mask_address(&address)))
                        };
                        Ok($crate::store::Suppression {
                            scope: $crate::domain::SuppressionScope::parse(&channel).map_err(corrupt)?,
                            reason: $crate::domain::SuppressionReason::parse(&reason).map_err(corrupt)?,
                            address,
                            source,
                            created_at,
                        })
                    })
                    .collect()
            }

            async fn setting_or_init(&self, key: &str, default: &str) -> StoreResult<String> {
                sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(default)
                    .execute(&self.pool)
                    .await?;
                Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn create_activity(
                &self,
                a: &$crate::campaigns::NewActivity,
                now: i64,
            ) -> StoreResult<i64> {
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO activities (code, name, channel, programmed, period_from, period_to, split, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO NOTHING RETURNING id",
                )
                .bind(&a.code)
                .bind(&a.name)
                .bind(&a.channel)
                .bind(a.programmed)
                .bind(&a.period_from)
                .bind(&a.period_to)
                .bind(&a.split)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                id.ok_or_else(|| StoreError::Conflict(format!("activity {:?} already exists", a.code)))
            }

            async fn activity(&self, code: &str) -> StoreResult<Option<$crate::campaigns::Activity>> {
                Ok(sqlx::query_as("SELECT * FROM activities WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn activities(&self) -> StoreResult<Vec<$crate::campaigns::Activity>> {
                Ok(sqlx::query_as("SELECT * FROM activities ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn set_activity_targets(&self, activity_id: i64, targets: &[(String, i64)]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
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
            }

            async fn activity_targets(&self) -> StoreResult<Vec<(i64, String, i64)>> {
                Ok(sqlx::query_as("SELECT activity_id, entity, programmed FROM activity_targets ORDER BY activity_id, entity")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn record_activity(
                &self,
                activity_id: i64,
                done: i64,
                date: &str,
                note: Option<&str>,
                now: i64,
            ) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO activity_records (activity_id, done, date, note, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(activity_id)
                .bind(done)
                .bind(date)
                .bind(note)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn activity_records(&self) -> StoreResult<Vec<(i64, i64, String)>> {
                Ok(sqlx::query_as("SELECT activity_id, done, date FROM activity_records ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn message_facts(
                &self,
                from: Option<i64>,
                to: Option<i64>,
            ) -> StoreResult<Vec<$crate::store::MessageFact>> {
                Ok(sqlx::query_as(
                    "SELECT c.activity_id, m.channel, m.entity, m.country, m.language, m.status, \
                     COALESCE(m.sent_at, m.finished_at, m.created_at) / 900000 AS quarter, COUNT(*) AS count, \
                     COUNT(m.sent_at) AS accepted, CAST(COALESCE(SUM(m.segments), 0) AS BIGINT) AS segments \
                     FROM messages m JOIN campaigns c ON c.id = m.campaign_id \
                     WHERE COALESCE(m.sent_at, m.finished_at, m.created_at) >= $1 \
                     AND COALESCE(m.sent_at, m.finished_at, m.created_at) < $2 \
                     GROUP BY c.activity_id, m.channel, m.entity, m.country, m.language, m.status, \
                     COALESCE(m.sent_at, m.finished_at, m.created_at) / 900000",
                )
                .bind(from.unwrap_or(i64::MIN))
                .bind(to.unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn first_message_id(&self, campaign_id: i64) -> StoreResult<Option<i64>> {
                // Read from messages_campaign alone: the campaign's entries, not the outbox.
                Ok(sqlx::query_scalar("SELECT MIN(id) FROM messages WHERE campaign_id = $1")
                    .bind(campaign_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn message_ledger(
                &self,
                campaign_id: i64,
                statuses: &[String],
                after_message_id: i64,
                limit: i64,
            ) -> StoreResult<Vec<$crate::store::LedgerRow>> {
                // `+m.campaign_id` keeps SQLite from finding the campaign's
                // messages through messages_campaign, which would sort all of
                // them for every page; walking the outbox by id from the last
                // page needs no sort and stops at the page's end.
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT m.id AS message_id, m.run_id, \
                     (SELECT name FROM campaigns WHERE id = m.campaign_id) AS campaign, \
                     m.contact_id, m.channel, m.address, \
                     m.entity, m.country, m.language, m.status, m.attempts, m.segments, m.last_code, m.last_reason, \
                     m.created_at, m.sent_at, m.delivered_at, m.finished_at \
                     FROM messages m WHERE +m.campaign_id = ",
                );
                q.push_bind(campaign_id);
                q.push(" AND m.id > ");
                q.push_bind(after_message_id);
                if !statuses.is_empty() {
                    q.push(" AND m.status IN (");
                    let mut sep = q.separated(", ");
                    for status in statuses {
                        sep.push_bind(status.clone());
                    }
                    q.push(")");
                }
                q.push(" ORDER BY m.id LIMIT ");
                q.push_bind(limit);
                Ok(q.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn create_campaign(
                &self,
                c: &$crate::campaigns::NewCampaign,
                now: i64,
            ) -> StoreResult<i64> {
                let mut tx = self.pool.begin().await?;
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
                .bind(&c.channel)
                .bind(c.list_id)
                .bind(&c.segment)
                .bind(&c.lang_mode)
                .bind(&c.provider)
                .bind(&c.vars)
                .bind(&c.attachments)
                .bind(&c.state)
                .bind(c.start_at)
                .bind(&c.recurrence)
                .bind(c.recur_day)
                .bind(&c.recur_time)
                .bind(c.recur_until)
                .bind(&c.window_start)
                .bind(&c.window_end)
                .bind(c.expires_at)
                .bind(c.expires_after)
                .bind(c.budget_micros)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(policy) = &c.frequency_cap {
                    Self::save_frequency_cap(&mut tx, id, policy).await?;
                }
                tx.commit().await?;
                Ok(id)
            }

            async fn campaign(&self, id: i64) -> StoreResult<Option<$crate::campaigns::Campaign>> {
                let sql = format!("{} WHERE c.id = $1", super::portable::CAMPAIGN_SELECT);
                Ok(sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?)
            }

            async fn campaigns(&self) -> StoreResult<Vec<$crate::campaigns::Campaign>> {
                let sql = format!("{} ORDER BY c.id", super::portable::CAMPAIGN_SELECT);
                Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
            }

            async fn campaigns_in(
                &self,
                states: &[$crate::campaigns::CampaignState],
            ) -> StoreResult<Vec<$crate::campaigns::Campaign>> {
                if states.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(super::portable::CAMPAIGN_SELECT);
                q.push(" WHERE c.state IN (");
                let mut sep = q.separated(", ");
                for state in states {
                    sep.push_bind(state.code());
                }
                q.push(") ORDER BY c.id");
                Ok(q.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn set_campaign_state(
                &self,
                id: i64,
                from: &[$crate::campaigns::CampaignState],
                to: $crate::campaigns::CampaignState,
                reason: Option<&str>,
                now: i64,
            ) -> StoreResult<bool> {
                if from.is_empty() {
                    return Ok(false);
                }
                let mut q = sqlx::QueryBuilder::<$db>::new("UPDATE campaigns SET state = ");
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
                Ok(q.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn start_run(
                &self,
                campaign: &$crate::campaigns::Campaign,
                channel: $crate::domain::ChannelKind,
                segment: &$crate::contacts::Segment,
                period: &str,
                expires_at: Option<i64>,
                now: i64,
            ) -> StoreResult<$crate::campaigns::RunStart> {
                let mut tx = self.pool.begin().await?;
                let run_id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO runs (campaign_id, period, state, scheduled_for, started_at, expires_at) \
                     VALUES ($1, $2, 'running', $3, $3, $4) \
                     ON CONFLICT (campaign_id, period) DO NOTHING RETURNING id",
                )
                .bind(campaign.id)
                .bind(period)
                .bind(now)
                .bind(expires_at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(run_id) = run_id else {
                    let (run_id, total, no_address): (i64, i64, i64) = sqlx::query_as(
                        "SELECT id, total, no_address FROM runs WHERE campaign_id = $1 AND period = $2",
                    )
                    .bind(campaign.id)
                    .bind(period)
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok($crate::campaigns::RunStart {
                        run_id,
                        created: false,
                        total,
                        suppressed: 0,
                        no_address,
                    });
                };
                let address = super::portable::address_column(channel);
                let (condition, binds) = segment.to_sql("c", 6);
                let freeze = format!(
                    "INSERT INTO messages (run_id, campaign_id, contact_id, channel, address, kind, \
                     first_name, last_name, entity, country, language, credential, population, modality, \
                     status, next_attempt_at, last_reason, finished_at, created_at, updated_at) \
                     SELECT $1, $2, c.id, $3, c.{address}, c.kind, c.first_name, c.last_name, c.entity, \
                     c.country, c.language, c.credential, c.population, c.modality, \
                     CASE WHEN s.reason IS NULL THEN 'queued' ELSE 'suppressed' END, $4, s.reason, \
                     CASE WHEN s.reason IS NULL THEN NULL ELSE $4 END, $4, $4 \
                     FROM contacts c \
                     JOIN list_members lm ON lm.contact_id = c.id AND lm.list_id = $5 \
                     LEFT JOIN (SELECT address, MIN(reason) AS reason FROM suppressions \
                                WHERE channel IN ($3, 'all') GROUP BY address) s ON s.address = LOWER(c.{address}) \
                     WHERE c.{address} IS NOT NULL AND {condition} \
                     ON CONFLICT (run_id, contact_id, channel) DO NOTHING"
                );
                let mut q = sqlx::query(&freeze)
                    .bind(run_id)
                    .bind(campaign.id)
                    .bind(channel.code())
                    .bind(now)
                    .bind(campaign.list_id);
                for b in &binds {
                    q = q.bind(b);
                }
                q.execute(&mut *tx).await?;
                let missing = format!(
                    "SELECT COUNT(*) FROM contacts c \
                     JOIN list_members lm ON lm.contact_id = c.id AND lm.list_id = $1 \
                     WHERE c.{address} IS NULL AND {}",
                    segment.to_sql("c", 2).0
                );
                let mut q = sqlx::query_scalar::<_, i64>(&missing).bind(campaign.list_id);
                for b in &binds {
                    q = q.bind(b);
                }
                let no_address = q.fetch_one(&mut *tx).await?;
                let (total, suppressed): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'suppressed') FROM messages WHERE run_id = $1",
                )
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE runs SET total = $1, no_address = $2 WHERE id = $3")
                    .bind(total)
                    .bind(no_address)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE campaigns SET state = 'running', pause_reason = NULL, updated_at = $1 \
                     WHERE id = $2 AND state IN ('draft', 'scheduled', 'completed', 'missed')",
                )
                .bind(now)
                .bind(campaign.id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok($crate::campaigns::RunStart {
                    run_id,
                    created: true,
                    total,
                    suppressed,
                    no_address,
                })
            }

            async fn record_missed_run(&self, campaign_id: i64, period: &str, due: i64, now: i64) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO runs (campaign_id, period, state, scheduled_for, finished_at) \
                     VALUES ($1, $2, 'missed', $3, $4) ON CONFLICT (campaign_id, period) DO NOTHING",
                )
                .bind(campaign_id)
                .bind(period)
                .bind(due)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE campaigns SET state = 'missed', updated_at = $1 \
                     WHERE id = $2 AND recurrence IS NULL AND state = 'scheduled'",
                )
                .bind(now)
                .bind(campaign_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(inserted == 1)
            }

            async fn recent_failures(
                &self,
                campaign_id: i64,
                window: i64,
            ) -> StoreResult<(i64, i64, Option<String>)> {
                // Runs every second while sending: it walks attempts newest
                // first and stops at `window` of this campaign (CROSS JOIN keeps
                // SQLite from starting at the campaign's messages and sorting
                // all their attempts, a second a call at a million), and never
                // looks further back than the last RECENT_ATTEMPTS of all
                // campaigns together (or `window`, if that is larger).
                let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT a.outcome, a.code, a.reason FROM attempts a \
                     CROSS JOIN messages m \
                     WHERE m.id = a.message_id AND m.campaign_id = $1 \
                     AND a.id > (SELECT COALESCE(MAX(id), 0) FROM attempts) - $3 \
                     ORDER BY a.id DESC LIMIT $2",
                )
                .bind(campaign_id)
                .bind(window)
                .bind(window.max(super::portable::RECENT_ATTEMPTS))
                .fetch_all(&self.pool)
                .await?;
                let failed = |o: &str| o == "permanent" || o == "exhausted";
                let failures = rows.iter().filter(|(o, _, _)| failed(o)).count() as i64;
                let last = rows.iter().find(|(o, _, _)| failed(o)).map(|(_, code, reason)| {
                    [code.as_deref(), reason.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                Ok((rows.len() as i64, failures, last))
            }

            async fn retry_failed(&self, campaign_id: i64, now: i64) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE messages SET status = 'queued', series = series + 1, attempts = 0, \
                     next_attempt_at = $1, finished_at = NULL, updated_at = $1 \
                     WHERE campaign_id = $2 AND status = 'failed' AND permanent = 0 AND sent_at IS NULL",
                )
                .bind(now)
                .bind(campaign_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n > 0 {
                    sqlx::query(
                        "UPDATE runs SET state = 'running', finished_at = NULL WHERE campaign_id = $1 \
                         AND id IN (SELECT DISTINCT run_id FROM messages WHERE campaign_id = $1 AND status = 'queued')",
                    )
                    .bind(campaign_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE campaigns SET state = 'running', pause_reason = NULL, updated_at = $1 \
                         WHERE id = $2 AND state IN ('completed', 'paused', 'scheduled')",
                    )
                    .bind(now)
                    .bind(campaign_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn waiting_for_window(&self, campaign_id: i64, now: i64) -> StoreResult<(i64, Option<i64>)> {
                Ok(sqlx::query_as(
                    "SELECT COUNT(*), MIN(next_attempt_at) FROM messages \
                     WHERE campaign_id = $1 AND status IN ('queued', 'retrying') \
                     AND last_code = 'window' AND next_attempt_at > $2",
                )
                .bind(campaign_id)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn save_provider_state(&self, p: &$crate::store::ProviderState) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO provider_state (name, rate, base_rate, reason, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (name) DO UPDATE SET rate = excluded.rate, base_rate = excluded.base_rate, \
                     reason = excluded.reason, updated_at = excluded.updated_at",
                )
                .bind(&p.name)
                .bind(p.rate)
                .bind(p.base_rate)
                .bind(&p.reason)
                .bind(p.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn report_slow_down(&self, provider: &str, at: i64) -> StoreResult<()> {
                // A new row is an unlimited provider's (rate 0) that no worker has described yet.
                sqlx::query(
                    "INSERT INTO provider_state (name, rate, base_rate, reason, updated_at, slowed_at) \
                     VALUES ($1, 0, 0, NULL, $2, $2) \
                     ON CONFLICT (name) DO UPDATE SET slowed_at = CASE \
                     WHEN provider_state.slowed_at > excluded.slowed_at THEN provider_state.slowed_at \
                     ELSE excluded.slowed_at END",
                )
                .bind(provider)
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn slow_downs(&self) -> StoreResult<Vec<(String, i64)>> {
                Ok(sqlx::query_as("SELECT name, slowed_at FROM provider_state ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn provider_states(&self) -> StoreResult<Vec<$crate::store::ProviderState>> {
                Ok(sqlx::query_as(
                    "SELECT name, rate, base_rate, reason, updated_at FROM provider_state ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn update_schedule(
                &self,
                id: i64,
                schedule: &$crate::campaigns::CampaignSchedule,
                now: i64,
            ) -> StoreResult<bool> {
                Ok(sqlx::query(
                    "UPDATE campaigns SET start_at = $1, recurrence = $2, recur_day = $3, recur_time = $4, \
                     recur_until = $5, state = 'scheduled', updated_at = $6 \
                     WHERE id = $7 AND state IN ('draft', 'scheduled', 'missed', 'completed')",
                )
                .bind(schedule.start_at)
                .bind(&schedule.recurrence)
                .bind(schedule.recur_day)
                .bind(&schedule.recur_time)
                .bind(schedule.recur_until)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1)
            }

            async fn runs(&self, campaign_id: i64) -> StoreResult<Vec<$crate::campaigns::Run>> {
                Ok(sqlx::query_as(
                    "SELECT id, campaign_id, period, state, scheduled_for, started_at, finished_at, \
                     expires_at, total, no_address FROM runs WHERE campaign_id = $1 ORDER BY id",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn status_counts(
                &self,
                campaign_id: i64,
            ) -> StoreResult<($crate::campaigns::StatusCounts, i64)> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM messages WHERE campaign_id = $1 GROUP BY status",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let mut counts = $crate::campaigns::StatusCounts::default();
                for (status, n) in rows {
                    let status = $crate::campaigns::MessageStatus::parse(&status)
                        .map_err(|e| StoreError::Corrupt(format!("message status: {e}")))?;
                    counts.add(status, n);
                }
                let no_address: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(no_address), 0) AS BIGINT) FROM runs WHERE campaign_id = $1",
                )
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                Ok((counts, no_address))
            }

            async fn cancel_pending(&self, campaign_id: i64, now: i64) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE messages SET status = 'cancelled', finished_at = $1, updated_at = $1 \
                     WHERE campaign_id = $2 AND status IN ('queued', 'retrying')",
                )
                .bind(now)
                .bind(campaign_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE runs SET state = 'cancelled', finished_at = $1 WHERE campaign_id = $2 AND state = 'running'",
                )
                .bind(now)
                .bind(campaign_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn frequency_cap(
                &self,
                campaign_id: i64,
            ) -> StoreResult<Option<$crate::domain::CapPolicy>> {
                self.read_frequency_cap(campaign_id).await
            }

            async fn claim_capped(
                &self,
                campaign_id: i64,
                worker: &str,
                now: i64,
                lease_ms: i64,
                limit: i64,
                policy: &$crate::domain::CapPolicy,
            ) -> StoreResult<$crate::store::CappedClaim> {
                self.claim_within_cap(campaign_id, worker, now, lease_ms, limit, policy).await
            }

            async fn claim(
                &self,
                campaign_id: i64,
                worker: &str,
                now: i64,
                lease_ms: i64,
                limit: i64,
            ) -> StoreResult<Vec<$crate::campaigns::ClaimedMessage>> {
                let sql = super::portable::claim_sql($claim_lock);
                Ok(sqlx::query_as(&sql)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(campaign_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn record_outcomes(
                &self,
                worker: &str,
                outcomes: &[$crate::campaigns::Outcome],
                now: i64,
            ) -> StoreResult<$crate::campaigns::RecordReport> {
                let mut report = $crate::campaigns::RecordReport::default();
                let mut totals = super::portable::AttemptTotals::new();
                let mut tx = self.pool.begin().await?;
                // Two statements per chunk, not several per message: each
                // statement is a round trip to the database. A chunk's rows are
                // padded with empty ones up to a power of two, so the statements
                // come in a few shapes that stay prepared: a batch's size varies,
                // and preparing a statement of hundreds of rows anew for every
                // batch cost more than executing it (see docs/BENCHMARKS.md).
                for chunk in outcomes.chunks(super::portable::OUTCOME_CHUNK) {
                    let binds: Vec<super::portable::OutcomeBinds> =
                        chunk.iter().map(|o| super::portable::outcome_binds(o, now)).collect();
                    let rows = chunk.len().next_power_of_two();
                    let mut q = sqlx::query_as::<_, (i64, i64, i64)>(
                        super::portable::record_outcomes_sql(rows, $placeholders),
                    );
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

                    let attempts: Vec<(&$crate::campaigns::Outcome, &'static str, i64)> = chunk
                        .iter()
                        .zip(&binds)
                        .filter_map(|(o, b)| {
                            let attempt = attempt_of.get(&(o.message_id, o.lease_epoch))?;
                            Some((o, b.attempt_outcome?, *attempt))
                        })
                        .collect();
                    if !attempts.is_empty() {
                        let rows = attempts.len().next_power_of_two();
                        let mut q = sqlx::query(super::portable::record_attempts_sql(rows, $placeholders));
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
                        let key = (o.provider.as_str(), *outcome, super::portable::latency_bucket(o.latency_ms));
                        let (n, sum_ms) = totals.entry(key).or_default();
                        *n += 1;
                        *sum_ms += o.latency_ms.unwrap_or(0);
                    }
                    for o in chunk.iter().filter(|o| attempt_of.contains_key(&(o.message_id, o.lease_epoch))) {
                        if let $crate::campaigns::OutcomeKind::Failed { suppress: Some((address, scope, reason)), .. } = &o.kind {
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
                let pending: Option<i64> = sqlx::query_scalar("SELECT message_id FROM receipts WHERE applied = 0 LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
                if pending.is_some() {
                    super::portable::apply_pending_receipts::<$db>(&mut tx, now).await?;
                }
                // Last: every worker adds to the same few rows, so each holds
                // them only while it commits, and never waits while holding them.
                if !totals.is_empty() {
                    let sql = super::portable::add_attempt_totals_sql(totals.len(), $placeholders);
                    let mut q = sqlx::query(&sql);
                    for ((provider, outcome, bucket), (n, sum_ms)) in &totals {
                        q = q.bind(*provider).bind(*outcome).bind(*bucket).bind(*n).bind(*sum_ms);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(report)
            }

            async fn metrics(&self) -> StoreResult<$crate::store::MetricsSnapshot> {
                // Counted by campaign first, so that messages_campaign answers it
                // without reading the outbox's rows (0.6 s of CPU a scrape at a
                // million messages, now 0.1 s); a campaign's messages all go
                // on its channel.
                let messages = sqlx::query_as(
                    "SELECT c.channel, t.status, CAST(SUM(t.n) AS BIGINT) \
                     FROM (SELECT campaign_id, status, COUNT(*) AS n FROM messages GROUP BY campaign_id, status) t \
                     JOIN campaigns c ON c.id = t.campaign_id \
                     GROUP BY c.channel, t.status ORDER BY c.channel, t.status",
                )
                .fetch_all(&self.pool)
                .await?;
                // From the running sums, not the attempts themselves (migration 0004).
                let attempts = sqlx::query_as(
                    "SELECT provider, outcome, CAST(SUM(attempts) AS BIGINT) FROM attempt_totals \
                     GROUP BY provider, outcome ORDER BY provider, outcome",
                )
                .fetch_all(&self.pool)
                .await?;
                let timed: Vec<(String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT provider, bucket, CAST(SUM(attempts) AS BIGINT), CAST(SUM(latency_ms_sum) AS BIGINT) \
                     FROM attempt_totals WHERE bucket >= 0 GROUP BY provider, bucket",
                )
                .fetch_all(&self.pool)
                .await?;
                let latency = super::portable::latency_rows(timed);
                Ok($crate::store::MetricsSnapshot {
                    messages,
                    attempts,
                    latency,
                })
            }

            async fn receipt_target(
                &self,
                message_id: i64,
            ) -> StoreResult<Option<$crate::campaigns::ReceiptTarget>> {
                Ok(sqlx::query_as("SELECT id, channel, address, status FROM messages WHERE id = $1")
                    .bind(message_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn apply_receipt(
                &self,
                r: &$crate::campaigns::NewReceipt,
                now: i64,
            ) -> StoreResult<$crate::campaigns::ReceiptOutcome> {
                use $crate::campaigns::{ReceiptEffect, ReceiptOutcome};
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO receipts (message_id, source, status, dedup_key, detail, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedup_key) DO NOTHING",
                )
                .bind(r.message_id)
                .bind(&r.source)
                .bind(r.effect.code())
                .bind(&r.dedup_key)
                .bind(&r.detail)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    tx.commit().await?;
                    return Ok(ReceiptOutcome::Replayed);
                }
                if let Some((scope, reason)) = &r.suppress {
                    sqlx::query(
                        "INSERT INTO suppressions (address, channel, reason, source, created_at) \
                         SELECT LOWER(address), $1, $2, $3, $4 FROM messages WHERE id = $5 \
                         ON CONFLICT (address, channel) DO NOTHING",
                    )
                    .bind(scope.code())
                    .bind(reason.code())
                    .bind(format!("receipt:{}", r.source))
                    .bind(now)
                    .bind(r.message_id)
                    .execute(&mut *tx)
                    .await?;
                }
                let status: Option<String> = sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
                    .bind(r.message_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let outcome = if status.as_deref() == Some("sending") && r.effect != ReceiptEffect::Info {
                    ReceiptOutcome::Pending
                } else {
                    if r.effect == ReceiptEffect::Failed {
                        sqlx::query(
                            "UPDATE messages SET last_code = COALESCE($1, last_code), \
                             last_reason = COALESCE($2, last_reason) WHERE id = $3 AND status = 'sent'",
                        )
                        .bind(&r.code)
                        .bind(&r.detail)
                        .bind(r.message_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    super::portable::apply_pending_receipts::<$db>(&mut tx, now).await?;
                    ReceiptOutcome::Applied
                };
                tx.commit().await?;
                Ok(outcome)
            }

            async fn apply_reply(
                &self,
                inbound: &$crate::replies::NewInbound,
                now: i64,
            ) -> StoreResult<$crate::replies::AppliedReply> {
                super::inbound::InboundSql(&self.pool).apply(inbound, now).await
            }

            async fn record_reply(
                &self,
                inbound_id: i64,
                status: $crate::replies::ReplyStatus,
                detail: Option<String>,
            ) -> StoreResult<bool> {
                super::inbound::InboundSql(&self.pool).record_reply(inbound_id, status, detail).await
            }

            async fn inbound_log(
                &self,
                after_id: i64,
                limit: i64,
            ) -> StoreResult<Vec<$crate::replies::InboundRecord>> {
                super::inbound::InboundSql(&self.pool).log(after_id, limit).await
            }

            async fn extend_leases(&self, worker: &str, until: i64) -> StoreResult<u64> {
                Ok(sqlx::query(
                    "UPDATE messages SET lease_expires_at = $1 WHERE lease_owner = $2 AND status = 'sending'",
                )
                .bind(until)
                .bind(worker)
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            async fn release(&self, worker: &str, ids: &[i64], now: i64) -> StoreResult<u64> {
                let mut released = 0;
                for chunk in ids.chunks(1000) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE messages SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, \
                         lease_owner = NULL, lease_expires_at = NULL, updated_at = ",
                    );
                    q.push_bind(now)
                        .push(" WHERE status = 'sending' AND lease_owner = ")
                        .push_bind(worker)
                        .push(" AND id IN (");
                    let mut sep = q.separated(", ");
                    for id in chunk {
                        sep.push_bind(*id);
                    }
                    q.push(")");
                    released += q.build().execute(&self.pool).await?.rows_affected();
                }
                Ok(released)
            }

            async fn housekeeping(&self, now: i64) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE messages SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, \
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
                     WHERE status = 'sending' AND lease_expires_at <= $1",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE messages SET status = 'cancelled', finished_at = $1, updated_at = $1 \
                     WHERE status IN ('queued', 'retrying') \
                     AND campaign_id IN (SELECT id FROM campaigns WHERE state = 'cancelled')",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    // The campaign condition follows from the run's; it lets
                    // messages_campaign find the waiting messages directly.
                    "UPDATE messages SET status = 'expired', last_reason = 'the campaign expired before it could be sent', \
                     finished_at = $1, updated_at = $1 WHERE status IN ('queued', 'retrying') \
                     AND campaign_id IN (SELECT campaign_id FROM runs WHERE state = 'running' AND expires_at <= $1) \
                     AND run_id IN (SELECT id FROM runs WHERE state = 'running' AND expires_at <= $1)",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    // By campaign and status, so messages_campaign serves it:
                    // by run alone it would walk past every message already sent.
                    "UPDATE runs SET state = 'completed', finished_at = $1 WHERE state = 'running' \
                     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = runs.campaign_id \
                                     AND m.status IN ('queued', 'sending', 'retrying') AND m.run_id = runs.id)",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE campaigns SET state = 'completed', updated_at = $1 \
                     WHERE state = 'running' AND recurrence IS NULL \
                     AND EXISTS (SELECT 1 FROM runs r WHERE r.campaign_id = campaigns.id) \
                     AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.campaign_id = campaigns.id AND r.state = 'running')",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE campaigns SET state = 'scheduled', updated_at = $1 \
                     WHERE state = 'running' AND recurrence IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.campaign_id = campaigns.id AND r.state = 'running')",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM workers WHERE heartbeat_at + lease_ms < $1")
                    .bind(now - $crate::store::LOST_WORKERS_KEPT_MS)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn take_pace(
                &self,
                name: &str,
                ceiling: f64,
                slots: u32,
                signal: Option<$crate::store::PaceSignal>,
                now: f64,
            ) -> StoreResult<$crate::store::PaceGrant> {
                // One row per provider, locked by the first statement until
                // the commit: on PostgreSQL, workers taking slots at the same
                // moment queue for it, and none can take a slot another took.
                let mut tx = self.pool.begin().await?;
                let at = now as i64;
                sqlx::query(
                    // A changed configuration takes effect: a rate in force that
                    // was not slowed down follows the new ceiling, a slowed one
                    // stays slowed, but never above it.
                    "INSERT INTO provider_state (name, rate, base_rate, reason, updated_at, next_free, changed_at) \
                     VALUES ($1, $2, $2, NULL, $3, 0, 0) \
                     ON CONFLICT (name) DO UPDATE SET \
                       rate = CASE WHEN provider_state.rate <= 0 OR provider_state.rate >= provider_state.base_rate \
                                     OR provider_state.rate > excluded.base_rate \
                                   THEN excluded.base_rate ELSE provider_state.rate END, \
                       base_rate = excluded.base_rate",
                )
                .bind(name)
                .bind(ceiling)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let adjust = match signal {
                    // Every refusal holds recovery back; the rate halves at most once a step.
                    Some($crate::store::PaceSignal::SlowDown { .. }) => Some((
                        "UPDATE provider_state SET slowed_at = $3, \
                         rate = CASE WHEN changed_at > $4 THEN rate WHEN rate / 2 >= $2 THEN rate / 2 \
                                     WHEN rate < $2 THEN rate ELSE $2 END, \
                         changed_at = CASE WHEN changed_at > $4 THEN changed_at ELSE $3 END \
                         WHERE name = $1",
                        $crate::store::PACE_FLOOR,
                    )),
                    Some($crate::store::PaceSignal::Recovered) => Some((
                        "UPDATE provider_state SET changed_at = $3, \
                         rate = CASE WHEN rate * $2 > base_rate THEN base_rate ELSE rate * $2 END \
                         WHERE name = $1 AND rate < base_rate AND changed_at <= $4 AND slowed_at <= $4",
                        $crate::store::PACE_RECOVERY,
                    )),
                    None => None,
                };
                if let Some((sql, factor)) = adjust {
                    sqlx::query(sql)
                        .bind(name)
                        .bind(factor)
                        .bind(at)
                        .bind(at - $crate::store::PACE_STEP_MS)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some($crate::store::PaceSignal::SlowDown {
                    retry_after_ms: Some(wait),
                }) = signal
                {
                    sqlx::query(
                        "UPDATE provider_state SET \
                         next_free = CASE WHEN next_free < $2 THEN $2 ELSE next_free END WHERE name = $1",
                    )
                    .bind(name)
                    .bind(now + wait as f64)
                    .execute(&mut *tx)
                    .await?;
                }
                let (next_free, rate): (f64, f64) = sqlx::query_as(
                    // Slots left unused in the past are gone: a worker that
                    // was idle gets no burst, and the fleet never exceeds the rate.
                    "UPDATE provider_state SET \
                     next_free = (CASE WHEN next_free > $2 THEN next_free ELSE $2 END) + $3 * 1000 / rate, \
                     reason = CASE WHEN rate < base_rate THEN $4 ELSE NULL END, updated_at = $5 \
                     WHERE name = $1 RETURNING next_free, rate",
                )
                .bind(name)
                .bind(now)
                .bind(f64::from(slots))
                .bind($crate::store::SLOWED_REASON)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok($crate::store::PaceGrant {
                    first_slot: next_free - f64::from(slots) * 1000.0 / rate,
                    rate,
                })
            }

            async fn register_worker(&self, w: &$crate::store::WorkerInfo, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO workers (id, host, pid, version, lease_ms, started_at, heartbeat_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
                     version = excluded.version, lease_ms = excluded.lease_ms, \
                     started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                )
                .bind(&w.id)
                .bind(&w.host)
                .bind(w.pid)
                .bind(&w.version)
                .bind(w.lease_ms)
                .bind(w.started_at)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn worker_heartbeat(&self, id: &str, now: i64) -> StoreResult<bool> {
                Ok(sqlx::query("UPDATE workers SET heartbeat_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    == 1)
            }

            async fn deregister_worker(&self, id: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM workers WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn workers(&self) -> StoreResult<Vec<$crate::store::WorkerRow>> {
                let rows: Vec<(String, String, i64, String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT id, host, pid, version, lease_ms, started_at, heartbeat_at FROM workers \
                     ORDER BY started_at, id",
                )
                .fetch_all(&self.pool)
                .await?;
                // Leased messages are in status `sending`, which messages_lease finds.
                let leased: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT lease_owner, campaign_id, COUNT(*) FROM messages \
                     WHERE status = 'sending' AND lease_owner IN (SELECT id FROM workers) \
                     GROUP BY lease_owner, campaign_id ORDER BY lease_owner, campaign_id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, host, pid, version, lease_ms, started_at, heartbeat_at)| {
                        let held = leased
                            .iter()
                            .filter(|(owner, _, _)| *owner == id)
                            .map(|(_, campaign, n)| (*campaign, *n))
                            .collect();
                        $crate::store::WorkerRow {
                            info: $crate::store::WorkerInfo {
                                id,
                                host,
                                pid,
                                version,
                                lease_ms,
                                started_at,
                            },
                            heartbeat_at,
                            leased: held,
                        }
                    })
                    .collect())
            }
        }
    };
}

pub(super) use portable_store;

/// How far back, in attempts of all campaigns, auto-pause looks for a
/// campaign's latest ones: enough for a hundred campaigns sending at once.
pub(super) const RECENT_ATTEMPTS: i64 = 20_000;
