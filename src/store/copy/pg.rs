//! The PostgreSQL side of a copy: its catalogue, its typed values, and the
//! identity sequences to move past the copied ids.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, Postgres, Row};

use super::error::CopyError;
use super::rows::Value;
use super::table::{quote, Kind, Table};

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// aviso's tables in the schema it works in, without sqlx's record of migrations.
pub(super) async fn table_names(conn: &mut PgConnection) -> Result<Vec<String>, CopyError> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .map_err(CopyError::sql("reading the list of tables"))
}

pub(super) async fn tables(conn: &mut PgConnection) -> Result<Vec<Table>, CopyError> {
    let mut tables = Vec::new();
    for name in table_names(conn).await? {
        let what = format!("reading the columns of {name}");
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, udt_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(CopyError::sql(&what))?;
        let key: Vec<String> = sqlx::query_scalar(
            "SELECT k.column_name::text \
             FROM information_schema.table_constraints c \
             JOIN information_schema.key_column_usage k \
               ON k.constraint_schema = c.constraint_schema \
              AND k.constraint_name = c.constraint_name \
              AND k.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND c.table_name = $1 \
               AND c.constraint_type = 'PRIMARY KEY' \
             ORDER BY k.ordinal_position",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(CopyError::sql(&what))?;
        let parents: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT f.relname::text FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid \
             JOIN pg_class f ON f.oid = k.confrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.relname = $1",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(CopyError::sql(&what))?;
        let key = key
            .iter()
            .filter_map(|k| columns.iter().position(|(c, _)| c == k))
            .collect();
        tables.push(Table {
            name,
            columns: columns
                .into_iter()
                .map(|(name, udt)| (name, kind(&udt)))
                .collect(),
            key,
            parents,
        });
    }
    Ok(tables)
}

fn kind(udt: &str) -> Kind {
    match udt {
        "int2" => Kind::Int2,
        "int4" => Kind::Int4,
        "int8" => Kind::Int8,
        "float4" => Kind::Float4,
        "float8" => Kind::Float8,
        "bool" => Kind::Bool,
        "bytea" => Kind::Bytes,
        "text" | "varchar" | "bpchar" | "name" => Kind::Text,
        other => Kind::Other(other.to_string()),
    }
}

/// A value read as its column's type (other types were selected as text).
pub(super) fn value(row: &PgRow, i: usize, kind: &Kind) -> Result<Value, sqlx::Error> {
    let int = |n: Option<i64>| n.map_or(Value::Null, Value::Int);
    let float = |f: Option<f64>| f.map_or(Value::Null, Value::Float);
    Ok(match kind {
        Kind::Int2 => int(row.try_get::<Option<i16>, _>(i)?.map(i64::from)),
        Kind::Int4 => int(row.try_get::<Option<i32>, _>(i)?.map(i64::from)),
        Kind::Int8 => int(row.try_get(i)?),
        // SQLite keeps a boolean as the integer 0 or 1.
        Kind::Bool => int(row.try_get::<Option<bool>, _>(i)?.map(i64::from)),
        Kind::Float4 => float(row.try_get::<Option<f32>, _>(i)?.map(f64::from)),
        Kind::Float8 => float(row.try_get(i)?),
        Kind::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)?
            .map_or(Value::Null, Value::Bytes),
        Kind::Text | Kind::Other(_) | Kind::Dynamic => row
            .try_get::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::Text),
    })
}

/// Binds `value` as the type of the column it goes into; `Err` says why it cannot.
pub(super) fn bind<'q>(
    query: Query<'q>,
    value: &'q Value,
    kind: &Kind,
) -> Result<Query<'q>, String> {
    let narrow = |n: i64| format!("{n} does not fit the column's type");
    Ok(match (kind, value) {
        (Kind::Int2, Value::Null) => query.bind(None::<i16>),
        (Kind::Int4, Value::Null) => query.bind(None::<i32>),
        (Kind::Int8, Value::Null) => query.bind(None::<i64>),
        (Kind::Bool, Value::Null) => query.bind(None::<bool>),
        (Kind::Float4, Value::Null) => query.bind(None::<f32>),
        (Kind::Float8, Value::Null) => query.bind(None::<f64>),
        (Kind::Bytes, Value::Null) => query.bind(None::<Vec<u8>>),
        (_, Value::Null) => query.bind(None::<String>),
        (Kind::Int2, Value::Int(n)) => query.bind(i16::try_from(*n).map_err(|_| narrow(*n))?),
        (Kind::Int4, Value::Int(n)) => query.bind(i32::try_from(*n).map_err(|_| narrow(*n))?),
        (Kind::Int8, Value::Int(n)) => query.bind(*n),
        (Kind::Bool, Value::Int(n @ (0 | 1))) => query.bind(*n == 1),
        (Kind::Float4, Value::Float(f)) => query.bind(*f as f32),
        (Kind::Float8, Value::Float(f)) => query.bind(*f),
        (Kind::Bytes, Value::Bytes(b)) => query.bind(b.as_slice()),
        (Kind::Text | Kind::Other(_) | Kind::Dynamic, Value::Text(s)) => query.bind(s.as_str()),
        (kind, value) => {
            return Err(format!(
                "cannot store {} in a column of type {}",
                value.kind(),
                kind.name()
            ))
        }
    })
}

/// Moves every identity and serial sequence past the largest id copied, so
/// the next row inserted gets a new id instead of colliding with a copied one.
pub(super) async fn reset_sequences(conn: &mut PgConnection) -> Result<(), CopyError> {
    let what = "moving the id sequences past the copied rows";
    let sequences: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, \
                pg_get_serial_sequence(quote_ident(table_name), column_name) \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() \
           AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(CopyError::sql(what))?;
    for (table, column, sequence) in sequences {
        let sql = format!(
            "SELECT setval($1, COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
            quote(&column),
            quote(&table)
        );
        sqlx::query(&sql)
            .bind(&sequence)
            .execute(&mut *conn)
            .await
            .map_err(CopyError::sql(what))?;
    }
    Ok(())
}
