//! What SQLite and PostgreSQL write differently.

/// The backend-specific bits of otherwise shared statements.
pub(in crate::store) struct Dialect {
    /// `sqlite` or `postgres`, for messages and tests.
    pub name: &'static str,
    /// Appended to a claim's subquery: PostgreSQL workers skip each other's
    /// rows; SQLite has one writer and needs no lock.
    pub claim_lock: &'static str,
    /// The insert of rows that must not exist yet. On SQLite, `OR FAIL`
    /// cannot abort halfway, so the statement runs without a statement
    /// journal (which copied every page an import touched).
    pub insert_or_fail: &'static str,
    /// Foreign keys checked at commit, not per statement (on SQLite, again
    /// so that no statement journal is needed).
    pub defer_foreign_keys: &'static str,
    /// How the statements of thousands of parameters write them.
    pub placeholders: Placeholders,
}

impl Dialect {
    pub(crate) const SQLITE: Dialect = Dialect {
        name: "sqlite",
        claim_lock: "",
        insert_or_fail: "INSERT OR FAIL",
        defer_foreign_keys: "PRAGMA defer_foreign_keys = ON",
        placeholders: Placeholders::Positional,
    };

    pub(crate) const POSTGRES: Dialect = Dialect {
        name: "postgres",
        claim_lock: " FOR UPDATE SKIP LOCKED",
        insert_or_fail: "INSERT",
        // Deferrable constraints only (none yet): kept for the same sequence as SQLite.
        defer_foreign_keys: "SET CONSTRAINTS ALL DEFERRED",
        placeholders: Placeholders::Numbered,
    };
}

/// How a backend's statements write their bind parameters.
#[derive(Clone, Copy)]
pub(in crate::store) enum Placeholders {
    /// `?`, bound in order of appearance: SQLite finds a numbered (`$1`)
    /// parameter's position by scanning the names of all of them, which in a
    /// statement of thousands took longer than everything else the worker does.
    Positional = 0,
    /// `$1`, `$2`… (PostgreSQL).
    Numbered = 1,
}

impl Placeholders {
    /// The `n`-th parameter (from 1), which must be written in order.
    pub(super) fn nth(self, n: usize) -> String {
        match self {
            Placeholders::Positional => "?".to_string(),
            Placeholders::Numbered => format!("${n}"),
        }
    }
}
