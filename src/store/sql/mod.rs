//! The [`Store`](super::Store) for both databases: one SQL text each, read the
//! same way by SQLite and PostgreSQL (numbered `$n` placeholders, `ON
//! CONFLICT`, `RETURNING`, `COUNT(column)`), one file per area. What differs
//! between the two is a [`Dialect`].

mod activities;
mod campaign_rows;
mod campaigns;
mod cap;
mod contact_rows;
mod contacts;
mod dialect;
mod fleet;
mod inbound;
mod outbox;
mod receipts;
mod record;
mod reporting;
mod runs;
mod segment;
mod settings;
mod suppressions;

use sqlx::{PgPool, SqlitePool};

pub(super) use dialect::Dialect;

/// A connection pool of either database.
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `body` with `pool` bound to the concrete pool, once written and
/// compiled for each database. A generic function over `sqlx::Database` would
/// need a where-clause of a dozen per-type bounds on every function; here the
/// body is checked against both backends' concrete types instead. The closure
/// is only syntax, so that rustfmt formats the body: it is expanded inline, and
/// `?` and `return` act on the calling function.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::store::sql::Pool::Sqlite($p) => $body,
            $crate::store::sql::Pool::Postgres($p) => $body,
        }
    };
}
use on_pool;

/// The store of either database.
pub struct SqlStore {
    pool: Pool,
}

impl SqlStore {
    pub(super) fn new(pool: Pool) -> SqlStore {
        SqlStore { pool }
    }

    fn dialect(&self) -> &'static Dialect {
        match self.pool {
            Pool::Sqlite(_) => &Dialect::SQLITE,
            Pool::Postgres(_) => &Dialect::POSTGRES,
        }
    }
}

impl super::Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.dialect().name
    }
}

/// The contact column holding a channel's address.
fn address_column(channel: crate::domain::ChannelKind) -> &'static str {
    match channel {
        crate::domain::ChannelKind::Sms => "phone",
        crate::domain::ChannelKind::Email => "email",
    }
}
