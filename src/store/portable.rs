//! The part of the [`Store`](super::Store) implementation that both backends
//! share: SQL that SQLite and PostgreSQL read the same way (numbered `$n`
//! placeholders, `ON CONFLICT`, `RETURNING`, `COUNT(column)`), written once and
//! compiled for each backend's concrete types by [`portable_store!`].

use std::collections::BTreeMap;

use crate::contacts::Contact;
use crate::domain::{
    ContactKind, Country, Credential, EmailAddress, Entity, Invalid, Language, Modality,
    PhoneNumber, Population,
};

use super::{ContactCounts, StoreError};

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

/// Rebuilds a contact from its stored columns, re-checking every value so that
/// a hand-edited database cannot smuggle an invalid address into a send.
pub(super) fn contact_from_columns(c: [Option<String>; 12]) -> Result<Contact, StoreError> {
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

macro_rules! portable_store {
    ($store:ty, $db:ty, $name:literal) => {
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
                let mut tx = self.pool.begin().await?;
                for chunk in changed.chunks(1000) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO contacts ({}, row_hash, created_at, updated_at) ",
                        super::portable::CONTACT_COLUMNS
                    ));
                    q.push_values(chunk, |mut row, contact| {
                        for value in super::portable::contact_values(contact) {
                            row.push_bind(value);
                        }
                        row.push_bind(now).push_bind(now);
                    });
                    q.push(
                        " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
                         first_name = excluded.first_name, last_name = excluded.last_name, \
                         entity = excluded.entity, country = excluded.country, \
                         email = excluded.email, phone = excluded.phone, \
                         language = excluded.language, credential = excluded.credential, \
                         population = excluded.population, modality = excluded.modality, \
                         row_hash = excluded.row_hash, updated_at = excluded.updated_at",
                    );
                    q.build().execute(&mut *tx).await?;
                }
                for chunk in members.chunks(5000) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO list_members (list_id, contact_id, added_at) ",
                    );
                    q.push_values(chunk, |mut row, id| {
                        row.push_bind(list_id).push_bind(id).push_bind(now);
                    });
                    q.push(" ON CONFLICT (list_id, contact_id) DO NOTHING");
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn contact(
                &self,
                id: &str,
            ) -> StoreResult<Option<$crate::contacts::ContactRecord>> {
                use sqlx::Row;
                let sql = format!(
                    "SELECT {} FROM contacts WHERE id = $1",
                    super::portable::CONTACT_COLUMNS
                );
                let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await? else {
                    return Ok(None);
                };
                let mut columns: [Option<String>; 12] = Default::default();
                for (i, column) in columns.iter_mut().enumerate() {
                    *column = row.try_get(i)?;
                }
                let contact = super::portable::contact_from_columns(columns)?;
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
                    .bind(&s.address)
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
        }
    };
}

pub(super) use portable_store;
