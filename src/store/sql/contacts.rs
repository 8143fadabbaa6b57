//! Lists and contacts: what imports write and audiences read.

use async_trait::async_trait;

use super::contact_rows::{self, CONTACT_COLUMNS};
use super::segment::segment_sql;
use super::{on_pool, SqlStore};
use crate::campaigns::MessageStatus;
use crate::store::{ContactStore, StoreError, StoreResult};

#[async_trait]
impl ContactStore for SqlStore {
    async fn ensure_list(&self, name: &str, now: i64) -> StoreResult<i64> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO lists (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?;
            let id: i64 = sqlx::query_scalar("SELECT id FROM lists WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await?;
            Ok(id)
        })
    }

    async fn list_id(&self, name: &str) -> StoreResult<Option<i64>> {
        on_pool!(&self.pool, |pool| {
            Ok(sqlx::query_scalar("SELECT id FROM lists WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?)
        })
    }

    async fn has_contacts(&self) -> StoreResult<bool> {
        on_pool!(&self.pool, |pool| {
            let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM contacts LIMIT 1")
                .fetch_optional(pool)
                .await?;
            Ok(any.is_some())
        })
    }

    async fn contact_hashes(
        &self,
        ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        on_pool!(&self.pool, |pool| {
            let mut found = std::collections::HashMap::with_capacity(ids.len());
            // Bounded so both backends stay under their bind-parameter limits.
            for chunk in ids.chunks(5000) {
                let mut q =
                    sqlx::QueryBuilder::new("SELECT id, row_hash FROM contacts WHERE id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id);
                }
                q.push(")");
                let rows: Vec<(String, String)> = q.build_query_as().fetch_all(pool).await?;
                found.extend(rows);
            }
            Ok(found)
        })
    }

    async fn save_contacts(
        &self,
        list_id: i64,
        changed: &[crate::contacts::Contact],
        members: &[String],
        now: i64,
    ) -> StoreResult<()> {
        self.write_contacts(list_id, changed, members, now, true)
            .await
    }

    async fn insert_new_contacts(
        &self,
        list_id: i64,
        new: &[crate::contacts::Contact],
        members: &[String],
        now: i64,
    ) -> StoreResult<()> {
        self.write_contacts(list_id, new, members, now, false).await
    }

    async fn contact(&self, id: &str) -> StoreResult<Option<crate::contacts::ContactRecord>> {
        on_pool!(&self.pool, |pool| {
            let sql = format!("SELECT {} FROM contacts WHERE id = $1", CONTACT_COLUMNS);
            let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let contact = contact_rows::contact_from_row(&row)?;
            let lists: Vec<String> = sqlx::query_scalar(
                "SELECT l.name FROM lists l JOIN list_members m ON m.list_id = l.id \
                 WHERE m.contact_id = $1 ORDER BY l.name",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            Ok(Some(crate::contacts::ContactRecord { contact, lists }))
        })
    }

    async fn count_contacts(
        &self,
        list_id: Option<i64>,
        segment: &crate::contacts::Segment,
    ) -> StoreResult<crate::store::ContactCounts> {
        on_pool!(&self.pool, |pool| {
            // The segment's placeholders follow the list's, if there is one.
            let (membership, first) = match list_id {
                Some(_) => (
                    "JOIN list_members m ON m.contact_id = c.id AND m.list_id = $1",
                    2,
                ),
                None => ("", 1),
            };
            let (condition, binds) = segment_sql(segment, "c", first);
            let sql = format!(
                "SELECT c.entity, c.language, c.kind, COUNT(*), COUNT(c.phone), COUNT(c.email) \
                 FROM contacts c {membership} WHERE {condition} \
                 GROUP BY c.entity, c.language, c.kind"
            );
            let mut q = sqlx::query_as::<_, (Option<String>, String, String, i64, i64, i64)>(&sql);
            if let Some(list_id) = list_id {
                q = q.bind(list_id);
            }
            for b in binds {
                q = q.bind(b);
            }
            let groups = q.fetch_all(pool).await?;
            Ok(contact_rows::fold_counts(groups))
        })
    }

    async fn sample_contacts(
        &self,
        list_id: i64,
        segment: &crate::contacts::Segment,
        channel: crate::domain::ChannelKind,
        limit: i64,
    ) -> StoreResult<Vec<crate::contacts::Contact>> {
        let order =
            "LENGTH(COALESCE(c.first_name, '')) + LENGTH(COALESCE(c.last_name, '')) DESC, c.id";
        self.audience(list_id, segment, (&channel, true), "", order, limit)
            .await
    }

    async fn audience_page(
        &self,
        list_id: i64,
        segment: &crate::contacts::Segment,
        channel: crate::domain::ChannelKind,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::contacts::Contact>> {
        self.audience(list_id, segment, (&channel, true), after, "c.id", limit)
            .await
    }

    async fn without_address_page(
        &self,
        list_id: i64,
        segment: &crate::contacts::Segment,
        channel: crate::domain::ChannelKind,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::contacts::Contact>> {
        self.audience(list_id, segment, (&channel, false), after, "c.id", limit)
            .await
    }

    async fn unreached_messages(
        &self,
        campaign_id: i64,
    ) -> StoreResult<Vec<crate::store::Unreached>> {
        on_pool!(&self.pool, |pool| {
            let columns = CONTACT_COLUMNS
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
            for row in sqlx::query(&sql).bind(campaign_id).fetch_all(pool).await? {
                use sqlx::Row as _;
                let contact = contact_rows::contact_from_row(&row)?;
                let status = MessageStatus::parse(&row.try_get::<String, _>(12)?).map_err(|e| {
                    StoreError::Corrupt(format!("message to contact {}, status: {e}", contact.id))
                })?;
                out.push(crate::store::Unreached {
                    contact,
                    status,
                    reason: row.try_get(13)?,
                });
            }
            Ok(out)
        })
    }

    async fn contacts_with_phone(
        &self,
        phone: &str,
    ) -> StoreResult<Vec<crate::store::PhoneHolder>> {
        on_pool!(&self.pool, |pool| {
            Ok(
                sqlx::query_as(
                    "SELECT id, email, phone FROM contacts WHERE phone = $1 ORDER BY id",
                )
                .bind(phone)
                .fetch_all(pool)
                .await?,
            )
        })
    }
}

impl SqlStore {
    /// Writes contacts and list memberships in one transaction;
    /// `upsert`: contacts already stored are updated, else they are an
    /// error. Rows go in a thousand per statement. On SQLite, statements
    /// that cannot abort halfway (`OR FAIL`, foreign keys checked at
    /// commit) run without a statement journal, which copied every page
    /// they touched (a tenth of a large import's database time).
    async fn write_contacts(
        &self,
        list_id: i64,
        contacts: &[crate::contacts::Contact],
        members: &[String],
        now: i64,
        upsert: bool,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, |pool| {
            let contact_rows = |chunk: &[crate::contacts::Contact]| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "{} INTO contacts ({}, row_hash, created_at, updated_at) ",
                    self.dialect().insert_or_fail,
                    CONTACT_COLUMNS
                ));
                q.push_values(chunk, |mut row, contact| {
                    for value in contact_rows::contact_values(contact) {
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
            let mut statements =
                contacts
                    .chunks(1000)
                    .map(contact_rows)
                    .chain(members.chunks(5000).map(|chunk| {
                        let mut q = sqlx::QueryBuilder::new(format!(
                            "{} INTO list_members (list_id, contact_id, added_at) ",
                            self.dialect().insert_or_fail
                        ));
                        q.push_values(chunk, |mut row, id| {
                            row.push_bind(list_id).push_bind(id).push_bind(now);
                        });
                        q.push(" ON CONFLICT (list_id, contact_id) DO NOTHING");
                        q
                    }));
            let mut tx = pool.begin().await?;
            sqlx::query(self.dialect().defer_foreign_keys)
                .execute(&mut *tx)
                .await?;
            let mut next = statements.next();
            while let Some(mut statement) = next.take() {
                // The next statement is built (thousands of values bound)
                // while the database runs this one: an import's writing
                // side is otherwise one thread waiting on the other.
                let (done, following) = tokio::join!(statement.build().execute(&mut *tx), async {
                    statements.next()
                });
                done?;
                next = following;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Audience members (in the list and segment, with an address for
    /// the channel, or without one: `address`) with an id after
    /// `after`, in `order`.
    async fn audience(
        &self,
        list_id: i64,
        segment: &crate::contacts::Segment,
        address: (&crate::domain::ChannelKind, bool),
        after: &str,
        order: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::contacts::Contact>> {
        on_pool!(&self.pool, |pool| {
            let (channel, with_address) = address;
            let address = super::address_column(*channel);
            let present = if with_address {
                "IS NOT NULL"
            } else {
                "IS NULL"
            };
            let (condition, binds) = segment_sql(segment, "c", 4);
            let columns = CONTACT_COLUMNS
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
            for row in q.fetch_all(pool).await? {
                contacts.push(contact_rows::contact_from_row(&row)?);
            }
            Ok(contacts)
        })
    }
}
