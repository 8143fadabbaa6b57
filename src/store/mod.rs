//! Storage: one [`Store`] interface, two backends. SQLite is the embedded
//! default (a file, nothing to install); PostgreSQL lets several workers on
//! several hosts share one outbox. The SQL both understand is written once in
//! `portable.rs`; what differs lives in each backend's file.

mod portable;
mod postgres;
mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::contacts::{Contact, ContactRecord, Segment};
use crate::domain::{SuppressionReason, SuppressionScope};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot prepare the database {url}: {detail}")]
    Prepare { url: String, detail: String },
    #[error(
        "the database URL {0:?} is not understood: use sqlite://FILE or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl(String),
    #[error("could not update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("the database holds a value aviso cannot read: {0}")]
    Corrupt(String),
}

/// Opens (creating if needed) the database at `url` and brings its schema up to date.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else if url.starts_with("sqlite:") || !url.contains("://") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// Contacts in a list or segment, broken down the ways campaign staff ask about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContactCounts {
    pub total: i64,
    pub by_entity: BTreeMap<String, i64>,
    pub by_channel: ChannelCounts,
    pub by_language: BTreeMap<String, i64>,
    pub by_kind: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounts {
    pub sms: i64,
    pub email: i64,
}

/// An address that must never be messaged again on `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub address: String,
    pub scope: SuppressionScope,
    pub reason: SuppressionReason,
    pub source: String,
    pub created_at: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`, for messages and tests.
    fn backend(&self) -> &'static str;

    // Lists and contacts.
    async fn ensure_list(&self, name: &str, now: i64) -> StoreResult<i64>;
    async fn list_id(&self, name: &str) -> StoreResult<Option<i64>>;
    /// Content hashes of those of `ids` already stored.
    async fn contact_hashes(&self, ids: &[String]) -> StoreResult<HashMap<String, String>>;
    /// Inserts or updates `changed` and adds `members` (ids) to the list, in one transaction.
    async fn save_contacts(
        &self,
        list_id: i64,
        changed: &[Contact],
        members: &[String],
        now: i64,
    ) -> StoreResult<()>;
    async fn contact(&self, id: &str) -> StoreResult<Option<ContactRecord>>;
    async fn count_contacts(
        &self,
        list_id: Option<i64>,
        segment: &Segment,
    ) -> StoreResult<ContactCounts>;

    // Suppressions.
    /// Adds the suppressions not already present; returns how many were new.
    async fn add_suppressions(&self, items: &[Suppression]) -> StoreResult<u64>;
    async fn suppressions(&self, scope: Option<SuppressionScope>) -> StoreResult<Vec<Suppression>>;
}
