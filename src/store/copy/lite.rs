//! The SQLite side of a copy: its catalogue and its values.

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqliteConnection, TypeInfo, ValueRef};

use super::error::CopyError;
use super::rows::Value;
use super::table::{Kind, Table};

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// aviso's tables: not SQLite's own, nor sqlx's record of migrations.
pub(super) async fn table_names(conn: &mut SqliteConnection) -> Result<Vec<String>, CopyError> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations' \
         ORDER BY name",
    )
    .fetch_all(conn)
    .await
    .map_err(CopyError::sql("reading the list of tables"))
}

pub(super) async fn tables(conn: &mut SqliteConnection) -> Result<Vec<Table>, CopyError> {
    let mut tables = Vec::new();
    for name in table_names(conn).await? {
        let what = format!("reading the columns of {name}");
        let columns: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, pk FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await
                .map_err(CopyError::sql(&what))?;
        let parents: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await
                .map_err(CopyError::sql(&what))?;
        // `pk` is the column's position in the primary key, 0 when not in it.
        let mut key: Vec<(i64, usize)> = columns
            .iter()
            .enumerate()
            .filter(|(_, (_, pk))| *pk > 0)
            .map(|(i, (_, pk))| (*pk, i))
            .collect();
        key.sort_unstable();
        tables.push(Table {
            name,
            columns: columns
                .into_iter()
                .map(|(name, _)| (name, Kind::Dynamic))
                .collect(),
            key: key.into_iter().map(|(_, i)| i).collect(),
            parents,
        });
    }
    Ok(tables)
}

/// A value as SQLite stored it: its storage class decides, not the column's
/// declared type.
pub(super) fn value(row: &SqliteRow, i: usize) -> Result<Value, sqlx::Error> {
    let class = {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Value::Null);
        }
        raw.type_info().name().to_string()
    };
    Ok(match class.as_str() {
        "INTEGER" => Value::Int(row.try_get(i)?),
        "REAL" => Value::Float(row.try_get(i)?),
        "BLOB" => Value::Bytes(row.try_get(i)?),
        _ => Value::Text(row.try_get(i)?),
    })
}

pub(super) fn bind<'q>(query: Query<'q>, value: &'q Value) -> Query<'q> {
    match value {
        Value::Null => query.bind(None::<i64>),
        Value::Int(n) => query.bind(*n),
        Value::Float(f) => query.bind(*f),
        Value::Text(s) => query.bind(s.as_str()),
        Value::Bytes(b) => query.bind(b.as_slice()),
    }
}
