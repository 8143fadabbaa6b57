//! Tables as the catalogues describe them, the SQL that pages through and
//! fills them, and the order to copy them in.

use std::collections::BTreeMap;

use super::error::CopyError;

/// How a column is typed, on PostgreSQL; SQLite's columns take any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Dynamic,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Bool,
    Text,
    Bytes,
    /// Any other type, read as text and cast back from it.
    Other(String),
}

impl Kind {
    pub(super) fn name(&self) -> &str {
        match self {
            Kind::Dynamic => "any",
            Kind::Int2 => "smallint",
            Kind::Int4 => "integer",
            Kind::Int8 => "bigint",
            Kind::Float4 => "real",
            Kind::Float8 => "double precision",
            Kind::Bool => "boolean",
            Kind::Text => "text",
            Kind::Bytes => "bytea",
            Kind::Other(name) => name,
        }
    }

    /// The `n`th parameter, cast from text where the value travels as text.
    /// SQLite's are positional: sqlx looks a numbered one up by name among all
    /// the statement's, which made a 30,000-parameter insert take 80% of a copy.
    pub(super) fn placeholder(&self, n: usize) -> String {
        match self {
            Kind::Dynamic => "?".to_string(),
            Kind::Other(name) => format!("CAST(${n} AS {})", quote(name)),
            _ => format!("${n}"),
        }
    }
}

/// A table as one database's catalogue describes it.
#[derive(Debug, Clone)]
pub(super) struct Table {
    pub(super) name: String,
    pub(super) columns: Vec<(String, Kind)>,
    /// Positions in `columns` of the primary key's columns, in key order.
    pub(super) key: Vec<usize>,
    /// Tables its foreign keys point to.
    pub(super) parents: Vec<String>,
}

impl Table {
    /// Rows a page holds: up to 1,000, and few enough that an insert of a
    /// page stays under SQLite's limit of 32,766 parameters.
    pub(super) fn page_rows(&self) -> usize {
        (30_000 / self.columns.len().max(1)).clamp(1, 1000)
    }

    fn keys(&self) -> String {
        self.key
            .iter()
            .map(|&i| quote(&self.columns[i].0))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The next page in key order, after the key values bound as $1, $2, …
    pub(super) fn page_sql(&self, after: bool, limit: usize) -> String {
        let columns = self
            .columns
            .iter()
            .map(|(name, kind)| match kind {
                Kind::Other(_) => format!("{}::text", quote(name)),
                _ => quote(name),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let filter = if after {
            let params = self
                .key
                .iter()
                .enumerate()
                .map(|(n, &i)| self.columns[i].1.placeholder(n + 1))
                .collect::<Vec<_>>()
                .join(", ");
            format!(" WHERE ({}) > ({params})", self.keys())
        } else {
            String::new()
        };
        format!(
            "SELECT {columns} FROM {}{filter} ORDER BY {} LIMIT {limit}",
            quote(&self.name),
            self.keys()
        )
    }

    pub(super) fn insert_sql(&self, rows: usize) -> String {
        let width = self.columns.len();
        let values = (0..rows)
            .map(|r| {
                let row = self
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(c, (_, kind))| kind.placeholder(r * width + c + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({row})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let columns = self
            .columns
            .iter()
            .map(|(name, _)| quote(name))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} ({columns}) VALUES {values}",
            quote(&self.name)
        )
    }
}

/// An identifier quoted for both backends.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Pairs each source table with the target's, in an order where every table
/// comes after the tables its foreign keys point to.
pub(super) fn plan(
    source: Vec<Table>,
    target: Vec<Table>,
) -> Result<Vec<(Table, Table)>, CopyError> {
    let mut source: BTreeMap<String, Table> =
        source.into_iter().map(|t| (t.name.clone(), t)).collect();
    let target: BTreeMap<String, Table> = target.into_iter().map(|t| (t.name.clone(), t)).collect();
    if let Some(table) = source.keys().find(|t| !target.contains_key(*t)) {
        return Err(CopyError::MissingTable {
            table: table.clone(),
            present: "source",
            absent: "target",
        });
    }
    if let Some(table) = target.keys().find(|t| !source.contains_key(*t)) {
        return Err(CopyError::MissingTable {
            table: table.clone(),
            present: "target",
            absent: "source",
        });
    }
    let mut pending = target;
    let mut plan = Vec::new();
    while !pending.is_empty() {
        // The first table (by name) whose parents are all placed already.
        let ready = pending
            .values()
            .find(|t| {
                t.parents
                    .iter()
                    .all(|p| p == &t.name || !pending.contains_key(p))
            })
            .map(|t| t.name.clone());
        let Some(name) = ready else {
            let names: Vec<&str> = pending.keys().map(String::as_str).collect();
            return Err(CopyError::Cycle(names.join(", ")));
        };
        let to = pending.remove(&name).expect("found above");
        let from = source.remove(&name).expect("same tables on both sides");
        let columns = |t: &Table| t.columns.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
        if columns(&from) != columns(&to) {
            return Err(CopyError::ColumnsDiffer { table: name });
        }
        if from.key.is_empty() || to.key.is_empty() {
            return Err(CopyError::NoPrimaryKey { table: name });
        }
        plan.push((from, to));
    }
    Ok(plan)
}
