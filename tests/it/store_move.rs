//! `aviso migrate-store` and `aviso backup` against real databases: the demo
//! workspace to PostgreSQL and back with identical checksums, refusals that
//! change nothing, and a backup taken while a worker sends to smtp-sink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::dispatch::email_campaign;
use crate::reports::block_on;
use crate::support::peers::{postgres_url, SmtpSink};
use crate::support::{create_pg_database, eventually, Background, Workspace};

/// Runs statements on a SQLite file with a connection of the test's own.
fn sqlite(path: &Path, sql: &str) {
    block_on(async {
        let mut conn = sqlite_conn(path).await;
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    });
}

/// The first column of every row, as text.
fn sqlite_column(path: &Path, sql: &str) -> Vec<String> {
    block_on(async {
        let mut conn = sqlite_conn(path).await;
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    })
}

async fn sqlite_conn(path: &Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap()
}

fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every table of an aviso database on the test PostgreSQL server.
fn pg_tables(url: &str) -> BTreeSet<String> {
    psql(
        url,
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn sqlite_tables(path: &Path) -> BTreeSet<String> {
    sqlite_column(
        path,
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .into_iter()
    .collect()
}

/// Table → (rows, checksum) on one side of a `migrate-store --json` report.
fn sums(report: &Value, side: &str) -> BTreeMap<String, (u64, String)> {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = &t[side];
            (
                t["table"].as_str().unwrap().to_string(),
                (
                    s["rows"].as_u64().unwrap(),
                    s["checksum"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// `aviso --database-url FROM migrate-store ARGS…`
fn migrate<'a>(from: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--database-url", from, "migrate-store"];
    all.extend_from_slice(args);
    all
}

/// A finished demo in `ws`; returns the URL of its database.
fn demo(ws: &Workspace) -> String {
    ws.ok(&["demo", "--dir", "demo"]);
    format!("sqlite://{}", ws.path().join("demo/aviso.db").display())
}

#[test]
#[ignore = "needs PostgreSQL: run ops/test"]
fn the_demo_goes_to_postgres_and_back_with_identical_checksums() {
    let server = postgres_url();
    let ws = Workspace::new();
    let source = demo(&ws);
    let pg = create_pg_database(&server);

    let there = ws.json(&migrate(&source, &["--to", &pg, "--json"]));
    assert_eq!(there["copied"], true, "{there}");
    let demo_sums = sums(&there, "source");
    assert_eq!(demo_sums, sums(&there, "target"), "{there}");
    // Every table of the schema is copied, whichever migration added it.
    let copied: BTreeSet<String> = demo_sums.keys().cloned().collect();
    assert_eq!(copied, sqlite_tables(&ws.path().join("demo/aviso.db")));
    assert_eq!(copied, pg_tables(&pg));
    for busy in [
        "contacts",
        "messages",
        "attempts",
        "campaigns",
        "provider_state",
    ] {
        assert!(demo_sums[busy].0 > 0, "the demo fills {busy}: {there}");
    }

    let back = ws.path().join("back.db");
    let back_url = format!("sqlite://{}", back.display());
    let again = ws.json(&migrate(&pg, &["--to", &back_url, "--json"]));
    assert_eq!(again["copied"], true, "{again}");
    assert_eq!(
        sums(&again, "source"),
        demo_sums,
        "PostgreSQL holds the demo"
    );
    assert_eq!(
        sums(&again, "target"),
        demo_sums,
        "and so does the new file"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&back).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copy holds personal data");

    // A second run into the same database is refused, and changes nothing.
    let before = ws.json(&migrate(&source, &["--verify-only", "--to", &pg, "--json"]));
    assert_eq!(sums(&before, "target"), demo_sums);
    let refused = ws.fails(&migrate(&source, &["--to", &pg]), 1);
    assert_eq!(refused.lines().count(), 1, "{refused}");
    assert!(
        refused.contains("not empty") && refused.contains("table activities"),
        "{refused}"
    );
    let after = ws.json(&migrate(&source, &["--verify-only", "--to", &pg, "--json"]));
    assert_eq!(after, before);

    // The copied ids are behind PostgreSQL's sequences: new rows get new ids.
    let mut on_pg = Workspace::new();
    on_pg.database_url = pg.clone();
    on_pg.env("AVISO_EMAIL_PROVIDER", "file://outbox");
    on_pg.ok(&[
        "activity",
        "create",
        "--code",
        "NUEVA",
        "--name",
        "Nueva",
        "--channel",
        "email",
        "--programmed",
        "10",
    ]);
    let created = on_pg.json(&[
        "campaign",
        "create",
        "--activity",
        "NUEVA",
        "--template",
        "registro_abierto",
        "--list",
        "ciudadania",
        "--json",
    ]);
    assert_eq!(
        created["id"], 6,
        "after the demo's five campaigns: {created}"
    );

    // The verification names the one table that differs.
    psql(
        &pg,
        "DELETE FROM campaigns WHERE id = 6; DELETE FROM activities WHERE code = 'NUEVA'",
    );
    psql(&pg, "UPDATE settings SET value = value || 'x'");
    let out = ws.run(&migrate(&source, &["--verify-only", "--to", &pg]));
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    let settings = table.lines().find(|l| l.starts_with("settings ")).unwrap();
    assert!(settings.ends_with("DIFFERS"), "{table}");
    assert_eq!(table.matches("DIFFERS").count(), 1, "{table}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 table(s) differ") && stderr.contains("settings"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs PostgreSQL: run ops/test"]
fn odd_values_survive_the_round_trip_and_a_value_postgres_refuses_leaves_it_empty() {
    let server = postgres_url();
    let ws = Workspace::new();
    ws.ok(&["suppress", "list"]);
    let db = ws.path().join("aviso.db");
    sqlite(
        &db,
        "INSERT INTO settings (key, value) VALUES ('ñandú ☃', 'línea 1\nlínea \"2\"'), ('vacío', ''); \
         INSERT INTO provider_state (name, rate, base_rate, reason, updated_at) VALUES \
           ('a', 0.1, 1e300, NULL, 9223372036854775807), \
           ('b', -2.5e-7, 0.0, 'lento', -9223372036854775808), \
           ('c', 3.0, 1.0000000000000002, '', 0);",
    );
    let pg = create_pg_database(&server);
    let there = ws.json(&["migrate-store", "--to", &pg, "--json"]);
    assert_eq!(sums(&there, "source"), sums(&there, "target"), "{there}");
    assert_eq!(
        psql(
            &pg,
            "SELECT rate || ' ' || base_rate FROM provider_state WHERE name = 'b'"
        ),
        "-2.5e-07 0"
    );
    let back = format!("sqlite://{}", ws.path().join("back.db").display());
    let again = ws.json(&migrate(&pg, &["--to", &back, "--json"]));
    assert_eq!(sums(&again, "target"), sums(&there, "source"), "{again}");

    // SQLite takes a text where an integer belongs; PostgreSQL does not. The
    // copy stops, says where, and leaves the target as empty as it found it,
    // though the tables copied before that one (provider_state, settings) had
    // been written.
    sqlite(
        &db,
        "INSERT INTO suppressions (address, channel, reason, source, created_at) \
         VALUES ('+12135550123', 'all', 'opt_out', 'cli', 'ayer')",
    );
    let empty = create_pg_database(&server);
    let err = ws.fails(&["migrate-store", "--to", &empty], 1);
    assert!(
        err.contains("table suppressions, column created_at"),
        "{err}"
    );
    for table in pg_tables(&empty) {
        assert_eq!(
            psql(&empty, &format!("SELECT COUNT(*) FROM {table}")),
            "0",
            "{table}"
        );
    }
}

#[test]
#[ignore = "needs PostgreSQL: run ops/test"]
fn a_table_only_the_catalogues_know_is_copied_after_the_table_it_references() {
    let server = postgres_url();
    let ws = Workspace::new();
    ws.ok(&["suppress", "list"]);
    // As a later migration might add it: other types on PostgreSQL than on
    // SQLite, and a foreign key to a table that sorts after it.
    sqlite(
        &ws.path().join("aviso.db"),
        "CREATE TABLE extra (id INTEGER PRIMARY KEY, provider TEXT REFERENCES provider_state (name), \
           doc TEXT, flag BOOLEAN, n INTEGER, r REAL, data BLOB); \
         INSERT INTO provider_state (name, rate, base_rate, reason, updated_at) \
           VALUES ('smtp', 1.0, 1.0, NULL, 0); \
         INSERT INTO extra VALUES (1, 'smtp', '{\"a\": 1, \"b\": [true, null]}', 1, 2147483647, 0.5, X'00ff'), \
           (2, NULL, NULL, 0, -5, NULL, NULL);",
    );
    let pg = create_pg_database(&server);
    ws.ok(&["--database-url", &pg, "suppress", "list"]);
    psql(
        &pg,
        "CREATE TABLE extra (id BIGINT PRIMARY KEY, provider TEXT REFERENCES provider_state (name), \
           doc JSONB, flag BOOLEAN, n INTEGER, r REAL, data BYTEA)",
    );
    let there = ws.json(&["migrate-store", "--to", &pg, "--json"]);
    let copied = sums(&there, "target");
    assert_eq!(sums(&there, "source"), copied, "{there}");
    assert_eq!(copied["extra"].0, 2, "{there}");
    assert_eq!(
        psql(
            &pg,
            "SELECT doc->'b'->>0, flag, n, r FROM extra WHERE id = 1"
        ),
        "true|t|2147483647|0.5"
    );
    // Back into a database whose schema lacks the table: refused, by name.
    let back = format!("sqlite://{}", ws.path().join("back.db").display());
    let err = ws.fails(&migrate(&pg, &["--to", &back]), 1);
    assert!(
        err.contains("table extra is in the source database but not in the target"),
        "{err}"
    );
}

#[test]
fn migrate_store_refuses_the_same_database_and_a_verification_of_nothing() {
    let ws = Workspace::new();
    ws.ok(&["suppress", "list"]);
    let same = format!("sqlite://{}/./aviso.db", ws.path().display());
    let err = ws.fails(&["migrate-store", "--to", &same], 1);
    assert!(err.contains("same database"), "{err}");
    let err = ws.fails(
        &[
            "migrate-store",
            "--verify-only",
            "--to",
            "sqlite://nowhere.db",
        ],
        1,
    );
    assert!(err.contains("no database at nowhere.db"), "{err}");
    assert!(!ws.path().join("nowhere.db").exists());
    let err = ws.fails(&["migrate-store", "--to", "mysql://db/aviso"], 1);
    assert!(err.contains("not understood"), "{err}");
}

#[test]
fn backup_refuses_an_existing_file_unless_forced_and_sends_postgres_to_pg_dump() {
    let ws = Workspace::new();
    ws.ok(&["suppress", "add", "+12135550123", "--reason", "opt_out"]);
    let file = ws.write("copia.db", "keep me");
    let err = ws.fails(&["backup", &file], 1);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let wrote = ws.json(&["backup", &file, "--force", "--json"]);
    assert_eq!(wrote["messages"], 0, "{wrote}");
    assert!(wrote["tables"].as_i64().unwrap() >= 15, "{wrote}");
    assert_eq!(
        sqlite_column(Path::new(&file), "SELECT address FROM suppressions"),
        ["+12135550123"]
    );
    let leftovers: Vec<_> = std::fs::read_dir(ws.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty());

    let mut pg = Workspace::new();
    pg.database_url = "postgres://aviso:s3cret@127.0.0.1:1/aviso".into();
    let err = pg.fails(&["backup", "aviso.dump"], 1);
    assert!(
        err.contains(
            "pg_dump --format=custom --file='aviso.dump' 'postgres://aviso@127.0.0.1:1/aviso'"
        ),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
#[ignore = "needs smtp-sink: run ops/test"]
fn a_backup_taken_while_a_worker_sends_holds_everything_sent_before_it() {
    const N: usize = 4000;
    let sink = SmtpSink::start(&[]);
    let mut ws = Workspace::new();
    // Paced, so the worker is still sending when the backup runs.
    let provider = format!("smtp://127.0.0.1:{}?tls=none&pool=4&rate=800", sink.port());
    ws.env("AVISO_EMAIL_PROVIDER", &provider);
    let id = email_campaign(&ws, N);
    ws.ok(&["campaign", "start", &id.to_string()]);
    let worker = Background::spawn(ws.command(&["worker"]));

    let db = ws.path().join("aviso.db");
    let sent = "SELECT CAST(id AS TEXT) FROM messages WHERE status IN ('sent', 'delivered')";
    assert!(
        eventually(Duration::from_secs(60), || sqlite_column(&db, sent).len()
            >= N / 4),
        "the worker did not get going"
    );
    let before: BTreeSet<String> = sqlite_column(&db, sent).into_iter().collect();
    let copy = ws.path().join("copia.db");
    let wrote = ws.json(&["backup", copy.to_str().unwrap(), "--json"]);
    let after_backup = sqlite_column(&db, sent).len();
    drop(worker);
    assert!(
        after_backup < N,
        "the worker finished before the backup did"
    );
    assert_eq!(wrote["messages"], N, "{wrote}");

    assert_eq!(sqlite_column(&copy, "PRAGMA integrity_check"), ["ok"]);
    let in_copy: BTreeSet<String> = sqlite_column(&copy, sent).into_iter().collect();
    let missing: Vec<_> = before.difference(&in_copy).collect();
    assert!(
        missing.is_empty(),
        "sent before the backup, not in it: {missing:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    eprintln!(
        "backup during the send: {} sent before, {} in the copy, {after_backup} after",
        before.len(),
        in_copy.len()
    );
}
