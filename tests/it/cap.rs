//! The frequency cap end to end: two overlapping campaigns to the same
//! contacts, started together and sent by two workers at once, on SQLite and
//! on PostgreSQL; the defer mode; bad values refused.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::peers::postgres_url;
use crate::support::Workspace;

const CONTACTS: usize = 1000;

/// `n` citizens with a mobile each (all distinct), across the four entities.
fn contacts_csv(n: usize) -> String {
    let entities = ["AGS", "DGO", "OAX", "TAM"];
    let mut csv = String::from(
        "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma,tipo_credencial,poblacion,modalidad\n",
    );
    for i in 0..n {
        csv.push_str(&format!(
            "K{i:04},Persona{i},Prueba,{},US,k{i}@example.org,1,213555{i:04},es,CPVE,primaria,postal\n",
            entities[i % 4]
        ));
    }
    csv
}

/// A workspace sending SMS and e-mail to files, with `n` contacts in list `todos`.
fn workspace(mut ws: Workspace, toml: &str, n: usize) -> Workspace {
    let sms = format!("file://{}", ws.path().join("out/sms").display());
    let email = format!("file://{}", ws.path().join("out/email").display());
    ws.env("AVISO_SMS_PROVIDER", &sms)
        .env("AVISO_EMAIL_PROVIDER", &email);
    ws.write("aviso.toml", format!("timezone = \"UTC\"\n{toml}"));
    let csv = ws.write("contacts.csv", contacts_csv(n));
    let imported = ws.ok(&["contacts", "import", &csv, "--list", "todos"]);
    assert!(imported.contains("0 rejected"), "{imported}");
    ws.ok(&[
        "activity",
        "create",
        "--code",
        "SMS-REG",
        "--name",
        "Envío de mensajes SMS",
        "--channel",
        "sms",
        "--programmed",
        "2000",
    ]);
    ws
}

/// `campaign create` of the test's SMS campaign, with `extra` flags.
fn create_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "campaign",
        "create",
        "--activity",
        "SMS-REG",
        "--template",
        "registro_abierto",
        "--list",
        "todos",
    ];
    args.extend_from_slice(extra);
    args
}

fn create(ws: &Workspace, extra: &[&str]) -> i64 {
    let mut args = create_args(extra);
    args.push("--json");
    ws.json(&args)["id"].as_i64().expect("campaign id")
}

fn status(ws: &Workspace, id: i64) -> Value {
    ws.json(&["campaign", "status", &id.to_string(), "--json"])
}

/// Two workers at once, each until nothing is due, then one more to finish
/// whatever a lost race left; bounded in time.
fn two_workers(ws: &Workspace) {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut workers: Vec<_> = (0..2)
        .map(|_| {
            ws.command(&["worker", "--once", "--concurrency", "8"])
                .spawn()
                .expect("start a worker")
        })
        .collect();
    for worker in &mut workers {
        loop {
            if let Some(exit) = worker.try_wait().unwrap() {
                assert!(exit.success(), "a worker failed: {exit}");
                break;
            }
            if Instant::now() > deadline {
                let _ = worker.kill();
                panic!("a worker ran past its deadline");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    ws.ok(&["worker", "--once"]);
}

/// SMS written by the file provider, by phone.
fn sms_by_phone(ws: &Workspace) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(ws.path().join("out/sms/sms.jsonl")).unwrap_or_default();
    let mut by_phone = BTreeMap::new();
    for line in text.lines() {
        let sms: Value = serde_json::from_str(line).unwrap();
        *by_phone
            .entry(sms["to"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    by_phone
}

/// A campaign's ledger export (`report messages`).
fn ledger(ws: &Workspace, id: i64) -> Vec<Value> {
    let rows = ws.json(&[
        "report",
        "messages",
        "--campaign",
        &id.to_string(),
        "--format",
        "json",
    ]);
    rows.as_array().unwrap().clone()
}

/// (sent, capped) of a campaign from its ledger export.
fn ledger_counts(ws: &Workspace, id: i64) -> (i64, i64) {
    let rows = ledger(ws, id);
    let count = |status: &str| rows.iter().filter(|r| r["status"] == status).count() as i64;
    assert_eq!(rows.len(), CONTACTS, "one ledger row per message");
    (count("sent") + count("delivered"), count("capped"))
}

fn two_overlapping_campaigns_reach_each_contact_once(ws: Workspace) {
    let ws = workspace(ws, "", CONTACTS);
    let first = create(&ws, &["--frequency-cap", "1/1d"]);
    let second = create(&ws, &["--frequency-cap", "1/24h", "--name", "second"]);
    for id in [first, second] {
        ws.ok(&["campaign", "start", &id.to_string()]);
    }
    two_workers(&ws);

    let by_phone = sms_by_phone(&ws);
    assert_eq!(by_phone.len(), CONTACTS, "every contact got a message");
    assert!(
        by_phone.values().all(|n| *n == 1),
        "some contact got more than one: {:?}",
        by_phone
            .iter()
            .filter(|(_, n)| **n > 1)
            .take(5)
            .collect::<Vec<_>>()
    );

    let mut sent = 0;
    let mut capped = 0;
    for id in [first, second] {
        let s = status(&ws, id);
        let counts = &s["counts"];
        assert_eq!(s["total"], CONTACTS as i64, "{s}");
        assert_eq!(s["frequency_cap"], "1/1d", "{s}");
        assert_eq!(s["when_capped"], "hold", "{s}");
        let (ledger_sent, ledger_capped) = ledger_counts(&ws, id);
        assert_eq!(counts["sent"].as_i64().unwrap(), ledger_sent, "{s}");
        assert_eq!(counts["capped"].as_i64().unwrap(), ledger_capped, "{s}");
        assert_eq!(ledger_sent + ledger_capped, CONTACTS as i64, "{s}");
        sent += ledger_sent;
        capped += ledger_capped;
        let text = ws.ok(&["campaign", "status", &id.to_string()]);
        let grouped = match ledger_capped {
            n if n >= 1000 => format!("{},{:03}", n / 1000, n % 1000),
            n => n.to_string(),
        };
        assert!(text.contains(&format!("capped {grouped}")), "{text}");
        assert!(text.contains("frequency cap 1/1d"), "{text}");
    }
    assert_eq!((sent, capped), (CONTACTS as i64, CONTACTS as i64));

    let indicators = ws.json(&[
        "report",
        "indicators",
        "--by",
        "activity",
        "--format",
        "json",
    ]);
    let row = &indicators[0];
    assert_eq!(row["sent"], CONTACTS as i64, "{indicators}");
    assert_eq!(row["capped"], CONTACTS as i64, "{indicators}");
    let metrics = ws.ok(&[
        "report",
        "indicators",
        "--by",
        "activity",
        "--format",
        "table",
    ]);
    assert!(
        metrics.contains("Capped") || metrics.contains("Retenidos"),
        "{metrics}"
    );
}

#[test]
fn two_overlapping_campaigns_reach_each_contact_once_on_sqlite() {
    two_overlapping_campaigns_reach_each_contact_once(Workspace::new());
}

#[test]
#[ignore = "needs PostgreSQL: run ops/test"]
fn two_overlapping_campaigns_reach_each_contact_once_on_postgres() {
    let url = postgres_url();
    two_overlapping_campaigns_reach_each_contact_once(Workspace::postgres(&url));
}

#[test]
fn the_cap_in_aviso_toml_applies_and_defer_waits_for_room() {
    let ws = workspace(Workspace::new(), "\n[sms]\nfrequency_cap = \"1/7d\"\n", 20);
    let first = create(&ws, &[]);
    let deferred = create(&ws, &["--when-capped", "defer", "--name", "later"]);
    let uncapped = create(&ws, &["--frequency-cap", "none", "--name", "urgent"]);
    for id in [first, deferred, uncapped] {
        ws.ok(&["campaign", "start", &id.to_string()]);
    }
    ws.ok(&["worker", "--once"]);
    ws.ok(&["worker", "--once"]);

    let s = status(&ws, first);
    assert_eq!(s["frequency_cap"], "1/1w", "{s}");
    assert_eq!(s["counts"]["sent"], 20, "{s}");
    let s = status(&ws, uncapped);
    assert_eq!(s["frequency_cap"], Value::Null, "{s}");
    assert_eq!(s["counts"]["sent"], 20, "{s}");
    // Deferred: still queued, for when the week has passed; not final.
    let s = status(&ws, deferred);
    assert_eq!(s["when_capped"], "defer", "{s}");
    assert_eq!(s["counts"]["queued"], 20, "{s}");
    assert_eq!(s["counts"]["capped"], 0, "{s}");
    assert_eq!(s["state"], "running", "{s}");
    for row in ledger(&ws, deferred) {
        assert_eq!(row["last_code"], "cap", "{row}");
        assert!(
            row["last_reason"]
                .as_str()
                .unwrap()
                .contains("waiting for the frequency cap 1/1w"),
            "{row}"
        );
    }
    // A week later: the stored times are moved back a week and a minute,
    // as if that time had passed; then they fit and go.
    let week = 7 * 86_400_000_i64 + 60_000;
    let now = chrono::Utc::now().timestamp_millis();
    block_on(async {
        let db = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&ws.database_url)
            .await
            .unwrap();
        let (min, max): (i64, i64) = sqlx::query_as(
            "SELECT MIN(next_attempt_at), MAX(next_attempt_at) FROM messages WHERE campaign_id = $1",
        )
        .bind(deferred)
        .fetch_one(&db)
        .await
        .unwrap();
        let expected = now + 7 * 86_400_000;
        assert!(
            min > expected - 600_000 && max <= expected,
            "{min}..{max} vs {expected}"
        );
        for sql in [
            "UPDATE cap_ledger SET at = at - $1",
            "UPDATE messages SET next_attempt_at = next_attempt_at - $1 WHERE last_code = 'cap'",
        ] {
            sqlx::query(sql).bind(week).execute(&db).await.unwrap();
        }
    });
    ws.ok(&["worker", "--once"]);
    let s = status(&ws, deferred);
    assert_eq!(s["counts"]["sent"], 20, "{s}");
    for row in ledger(&ws, deferred) {
        assert_ne!(row["last_code"], "cap", "sent, no longer waiting: {row}");
    }
    assert_eq!(sms_by_phone(&ws).values().sum::<usize>(), 60);
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn bad_caps_are_refused_with_what_is_accepted() {
    let ws = workspace(Workspace::new(), "", 3);
    for bad in ["2/7x", "0/1d", "2", "1/400d"] {
        let err = ws.fails(&create_args(&["--frequency-cap", bad]), 2);
        assert!(err.contains("--frequency-cap"), "{bad}: {err}");
        assert!(err.contains("e.g. 2/7d"), "{bad}: {err}");
    }
    let err = ws.fails(&create_args(&["--when-capped", "later"]), 2);
    assert!(err.contains("hold, defer"), "{err}");
    // In aviso.toml: the file, the line and what is accepted.
    ws.write(
        "aviso.toml",
        "timezone = \"UTC\"\n[sms]\nfrequency_cap = \"2/7x\"\n",
    );
    let err = ws.fails(&["campaign", "list"], 1);
    assert!(err.contains("aviso.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("e.g. 2/7d"), "{err}");
}
