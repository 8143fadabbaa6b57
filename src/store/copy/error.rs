//! Why a copy between two stores stopped, for `migrate-store` to print.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error {what}: {source}")]
    Sql { what: String, source: sqlx::Error },
    #[error("the source and the target are the same database ({0}): give --to another one")]
    SameDatabase(String),
    #[error(
        "the target database is not empty: table {table} holds rows, and migrate-store copies \
         only into an empty database; nothing was changed"
    )]
    TargetNotEmpty { table: String },
    #[error(
        "table {table} is in the {present} database but not in the {absent}: \
         is the other one from another version of aviso?"
    )]
    MissingTable {
        table: String,
        present: &'static str,
        absent: &'static str,
    },
    #[error("table {table} has other columns in the source than in the target")]
    ColumnsDiffer { table: String },
    #[error(
        "table {table} has no primary key: migrate-store reads a table page by page in key \
         order, and cannot copy it"
    )]
    NoPrimaryKey { table: String },
    #[error("tables {0} reference each other: no order of copying satisfies their foreign keys")]
    Cycle(String),
    #[error("table {table}, column {column}: {detail}")]
    Value {
        table: String,
        column: String,
        detail: String,
    },
    #[error("there is no database at {0}")]
    NoDatabase(String),
}

impl CopyError {
    pub(super) fn sql(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> CopyError {
        let what = what.into();
        move |source| CopyError::Sql { what, source }
    }
}
