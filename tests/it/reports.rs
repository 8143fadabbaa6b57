//! `aviso report`: the programme's indicators in every format reconcile to the
//! unit with the message table (counted here with SQL, independently of the
//! report code), programmed totals are split only where the activity says how,
//! the workbook opens in an independent reader (Python's openpyxl), the chart is
//! well-formed SVG, the HTML page renders in headless Chromium, names that look
//! like formulas stay inert, and the message ledger masks addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row as _;

use aviso::campaigns::{NewReceipt, ReceiptEffect, ReceiptOutcome};

use crate::support::peers::SmtpSink;
use crate::support::{drain, Workspace};

const WAIT: Duration = Duration::from_secs(90);

const MEASURES: [&str; 12] = [
    "programmed",
    "sent",
    "delivered",
    "failed",
    "suppressed",
    "expired",
    "capped",
    "indicator_pct",
    "delivery_rate_pct",
    "segments",
    "spent",
    "no_price",
];

/// Printed measures per row.
const N: usize = MEASURES.len();

/// Column titles in Spanish, the default language of every format.
const TITLES_ES: [(&str, &str); 19] = [
    ("activity", "Actividad"),
    ("activity_name", "Nombre"),
    ("month", "Mes"),
    ("entity", "Entidad"),
    ("channel", "Canal"),
    ("country", "País"),
    ("language", "Idioma"),
    ("programmed", "Programados"),
    ("sent", "Enviados"),
    ("delivered", "Entregados"),
    ("failed", "Fallidos"),
    ("suppressed", "Suprimidos"),
    ("expired", "Vencidos"),
    ("capped", "Retenidos"),
    ("indicator_pct", "Indicador %"),
    ("delivery_rate_pct", "Entrega %"),
    ("segments", "Segmentos SMS"),
    ("spent", "Gasto"),
    ("no_price", "Sin precio"),
];

const TITLES_EN: [(&str, &str); 19] = [
    ("activity", "Activity"),
    ("activity_name", "Name"),
    ("month", "Month"),
    ("entity", "Entity"),
    ("channel", "Channel"),
    ("country", "Country"),
    ("language", "Language"),
    ("programmed", "Programmed"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
    ("suppressed", "Suppressed"),
    ("expired", "Expired"),
    ("capped", "Capped"),
    ("indicator_pct", "Indicator %"),
    ("delivery_rate_pct", "Delivery %"),
    ("segments", "SMS segments"),
    ("spent", "Spent"),
    ("no_price", "No price"),
];

const GROUPINGS: [&str; 6] = [
    "activity",
    "activity,month",
    "entity",
    "channel",
    "country",
    "language",
];

// ---------------------------------------------------------------------------
// Workspaces

/// `n` citizens with an e-mail and a mobile each, in the USA, Canada and Spain,
/// across the four entities, in Spanish and English.
fn contacts_csv(n: usize) -> String {
    let entities = ["AGS", "DGO", "OAX", "TAM"];
    let mut csv = String::from(
        "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma,tipo_credencial,poblacion,modalidad\n",
    );
    for i in 0..n {
        let (country, lada, phone) = match i % 3 {
            0 => ("US", "1", format!("21355501{i:02}")),
            1 => ("CA", "1", format!("41655501{i:02}")),
            _ => ("ES", "34", format!("6123456{i:02}")),
        };
        let lang = if (i / 3) % 2 == 0 { "es" } else { "en" };
        csv.push_str(&format!(
            "C{i:02},Persona{i},Apellido Prueba,{},{country},c{i}@example.org,{lada},{phone},{lang},CPVE,primaria,postal\n",
            entities[i % 4]
        ));
    }
    csv
}

/// The E.164 phone of contact `i` of [`contacts_csv`].
fn phone_of(i: usize) -> String {
    match i % 3 {
        0 => format!("+121355501{i:02}"),
        1 => format!("+141655501{i:02}"),
        _ => format!("+346123456{i:02}"),
    }
}

const FAST_RETRIES: &str = "[retry]\ninitial_seconds = 0.2\nmultiplier = 1.0\nmax_interval_seconds = 0.2\nmax_attempts = 50\n\n[schedule]\nautopause_ratio = 1.0\n";

/// A workspace reporting in UTC (so SQL's `strftime` gives the report's
/// months), sending to files by default, with named providers in `providers`.
fn workspace(providers: &str, contacts: usize) -> Workspace {
    let mut ws = Workspace::new();
    let email = format!("file://{}", ws.path().join("out/email").display());
    let sms = format!("file://{}", ws.path().join("out/sms").display());
    ws.env("AVISO_EMAIL_PROVIDER", &email)
        .env("AVISO_SMS_PROVIDER", &sms)
        .env("AVISO_SMS_USERNAME", "aviso")
        .env("AVISO_SMS_PASSWORD", "secret");
    ws.write(
        "aviso.toml",
        format!("timezone = \"UTC\"\n\n{FAST_RETRIES}\n{providers}"),
    );
    let csv = ws.write("contacts.csv", contacts_csv(contacts));
    let imported = ws.ok(&["contacts", "import", &csv, "--list", "todos"]);
    assert!(imported.contains("0 rejected"), "{imported}");
    ws
}

fn activity(ws: &Workspace, args: &[&str]) {
    let mut all = vec!["activity", "create"];
    all.extend_from_slice(args);
    ws.ok(&all);
}

/// Creates a campaign; returns its id.
fn campaign(ws: &Workspace, args: &[&str]) -> i64 {
    let mut all = vec![
        "campaign",
        "create",
        "--template",
        "registro_abierto",
        "--list",
        "todos",
        "--json",
    ];
    all.extend_from_slice(args);
    ws.json(&all)["id"].as_i64().expect("campaign id")
}

fn start(ws: &Workspace, id: i64) {
    ws.ok(&["campaign", "start", &id.to_string()]);
}

pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn pool(ws: &Workspace) -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&ws.database_url)
        .await
        .expect("open the workspace's SQLite database")
}

/// Messages per status, straight from the table.
fn statuses(ws: &Workspace) -> BTreeMap<String, i64> {
    block_on(async {
        sqlx::query_as::<_, (String, i64)>("SELECT status, COUNT(*) FROM messages GROUP BY status")
            .fetch_all(&pool(ws).await)
            .await
            .unwrap()
            .into_iter()
            .collect()
    })
}

/// Marks the first `n` sent messages of `campaign` delivered, as a gateway's
/// delivery report would (through the store's receipt path).
fn mark_delivered(ws: &Workspace, campaign: i64, n: i64) {
    block_on(async {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE campaign_id = $1 AND status = 'sent' ORDER BY id LIMIT $2",
        )
        .bind(campaign)
        .bind(n)
        .fetch_all(&pool(ws).await)
        .await
        .unwrap();
        assert_eq!(
            ids.len() as i64,
            n,
            "campaign {campaign} has too few sent messages"
        );
        let store = aviso::store::open(&ws.database_url).await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        for id in ids {
            let receipt = NewReceipt {
                message_id: id,
                source: "json".into(),
                effect: ReceiptEffect::Delivered,
                dedup_key: format!("test-delivered-{id}"),
                code: None,
                detail: None,
                suppress: None,
            };
            let outcome = store.apply_receipt(&receipt, now).await.unwrap();
            assert!(
                matches!(outcome, ReceiptOutcome::Applied),
                "message {id}: {outcome:?}"
            );
        }
    });
}

/// A loopback server answering each connection with `answer`, one at a time,
/// on a port it holds until dropped.
struct LocalServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalServer {
    fn start(answer: fn(&mut TcpStream) -> std::io::Result<()>) -> LocalServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(mut stream) = stream {
                    let _ = answer(&mut stream);
                }
            }
        });
        LocalServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

/// Hangs up at once, as a mail server that is going down does: a temporary
/// failure for the sender.
fn hang_up(_: &mut TcpStream) -> std::io::Result<()> {
    Ok(())
}

/// Refuses every HTTP request with 400, as an SMS gateway answers for a number
/// it cannot take: a permanent failure.
fn refuse(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    let body_start = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < body_start + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let body = r#"{"error":"invalid destination number"}"#;
    write!(
        stream,
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Contacts 0..24 and campaigns that leave every status in the message table:
/// sent and delivered (files, then delivery reports), failed (smtp-sink
/// refusing RCPT with 5xx, and an SMS gateway answering 400), suppressed
/// (suppressed before the start), expired (a mail server that hangs up, and
/// a 2-second expiry) and cancelled (cancelled before any worker ran).
fn every_status_workspace(sink: &SmtpSink, gateway: &LocalServer, down: &LocalServer) -> Workspace {
    let providers = format!(
        "[providers.rechazo]\nchannel = \"email\"\nurl = \"smtp://127.0.0.1:{}?tls=none\"\n\n\
         [providers.caido]\nchannel = \"email\"\nurl = \"smtp://127.0.0.1:{}?tls=none\"\n\n\
         [providers.sms-rechazo]\nchannel = \"sms\"\nurl = \"webhook+http://127.0.0.1:{}/send\"\n",
        sink.port(),
        down.port,
        gateway.port
    );
    let ws = workspace(&providers, 24);
    activity(
        &ws,
        &[
            "--code",
            "SMS-REG",
            "--name",
            "Envío de mensajes SMS",
            "--channel",
            "sms",
            "--programmed",
            "60",
            "--target",
            "AGS=15",
            "--target",
            "DGO=15",
            "--target",
            "OAX=15",
            "--target",
            "TAM=15",
        ],
    );
    activity(
        &ws,
        &[
            "--code",
            "MAIL-REG",
            "--name",
            "Envío de correos electrónicos",
            "--channel",
            "email",
            "--programmed",
            "50",
            "--target",
            "AGS=10",
            "--target",
            "DGO=10",
            "--target",
            "OAX=15",
            "--target",
            "TAM=15",
        ],
    );
    for address in [phone_of(0), phone_of(2), "c5@example.org".to_string()] {
        ws.ok(&["suppress", "add", &address, "--reason", "opt_out"]);
    }
    let sms = campaign(&ws, &["--activity", "SMS-REG", "--channel", "sms"]);
    let email = campaign(&ws, &["--activity", "MAIL-REG", "--channel", "email"]);
    let refused = campaign(
        &ws,
        &[
            "--activity",
            "MAIL-REG",
            "--channel",
            "email",
            "--segment",
            "entity=OAX",
            "--provider",
            "rechazo",
        ],
    );
    let refused_sms = campaign(
        &ws,
        &[
            "--activity",
            "SMS-REG",
            "--channel",
            "sms",
            "--segment",
            "country=CA",
            "--provider",
            "sms-rechazo",
        ],
    );
    let late = campaign(
        &ws,
        &[
            "--activity",
            "MAIL-REG",
            "--channel",
            "email",
            "--segment",
            "entity=DGO",
            "--provider",
            "caido",
            "--expires",
            "2s",
        ],
    );
    let cancelled = campaign(
        &ws,
        &[
            "--activity",
            "SMS-REG",
            "--channel",
            "sms",
            "--segment",
            "lang=en",
        ],
    );
    for id in [sms, email, refused, refused_sms, late, cancelled] {
        start(&ws, id);
    }
    ws.ok(&["campaign", "cancel", &cancelled.to_string()]);
    for id in [sms, email, refused, refused_sms, late, cancelled] {
        drain(&ws, id);
    }
    mark_delivered(&ws, sms, 6);
    mark_delivered(&ws, email, 4);
    ws
}

// ---------------------------------------------------------------------------
// What the message table says

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    sent: i64,
    delivered: i64,
    failed: i64,
    suppressed: i64,
    expired: i64,
    capped: i64,
    segments: i64,
    /// Accepted messages without a price (all of them: these workspaces set no prices).
    no_price: i64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.suppressed += o.suppressed;
        self.expired += o.expired;
        self.capped += o.capped;
        self.segments += o.segments;
        self.no_price += o.no_price;
    }
}

type Key = Vec<Option<String>>;

/// The column (SQL expression) a group key stands for. Months in UTC, the
/// workspace's zone, of the message's last event.
fn sql_column(key: &str) -> &'static str {
    match key {
        "activity" => "a.code",
        "month" => "strftime('%Y-%m', COALESCE(m.sent_at, m.finished_at, m.created_at) / 1000, 'unixepoch')",
        "entity" => "m.entity",
        "channel" => "m.channel",
        "country" => "m.country",
        "language" => "m.language",
        other => panic!("unknown key {other}"),
    }
}

/// Counts per group, with GROUP BY on the message table; `keys` empty: the total.
fn sql_groups(ws: &Workspace, keys: &[&str]) -> BTreeMap<Key, Counts> {
    let columns: Vec<&str> = keys.iter().map(|k| sql_column(k)).collect();
    let select: String = columns.iter().map(|c| format!("{c}, ")).collect();
    let group = if columns.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", columns.join(", "))
    };
    let sql = format!(
        "SELECT {select}\
         COALESCE(SUM(m.status IN ('sent', 'delivered')), 0), COALESCE(SUM(m.status = 'delivered'), 0), \
         COALESCE(SUM(m.status = 'failed'), 0), COALESCE(SUM(m.status = 'suppressed'), 0), \
         COALESCE(SUM(m.status = 'expired'), 0), COALESCE(SUM(m.status = 'capped'), 0), \
         COALESCE(SUM(m.segments), 0) \
         FROM messages m JOIN campaigns c ON c.id = m.campaign_id \
         JOIN activities a ON a.id = c.activity_id{group}"
    );
    block_on(async {
        let rows = sqlx::query(&sql).fetch_all(&pool(ws).await).await.unwrap();
        rows.iter()
            .map(|row| {
                let key: Key = (0..keys.len())
                    .map(|i| row.get::<Option<String>, _>(i))
                    .collect();
                let n = |i: usize| row.get::<i64, _>(keys.len() + i);
                let counts = Counts {
                    sent: n(0),
                    delivered: n(1),
                    failed: n(2),
                    suppressed: n(3),
                    expired: n(4),
                    capped: n(5),
                    segments: n(6),
                    no_price: 0,
                };
                (key, counts)
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------
// What each format says

#[derive(Debug, Clone, Default, PartialEq)]
struct Row {
    key: Key,
    programmed: Option<i64>,
    counts: Counts,
    indicator: Option<f64>,
    delivery: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct Parsed {
    rows: Vec<Row>,
    /// The totals row, in formats that have one.
    total: Option<Row>,
}

fn keys_of(by: &str) -> Vec<&str> {
    by.split(',').collect()
}

fn expected_header(by: &str, titles: &[(&str, &str)]) -> Vec<String> {
    let title = |k: &str| {
        titles
            .iter()
            .find(|(key, _)| *key == k)
            .unwrap()
            .1
            .to_string()
    };
    let mut out: Vec<String> = keys_of(by).iter().map(|k| title(k)).collect();
    if keys_of(by).contains(&"activity") {
        out.push(title("activity_name"));
    }
    out.extend(MEASURES.iter().map(|m| title(m)));
    out
}

/// A number as printed: `1,234` → 1234; `—` or nothing → none.
fn printed_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s == "—" {
        return None;
    }
    Some(
        s.replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("not a count: {s:?}")),
    )
}

fn printed_pct(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() || s == "—" {
        return None;
    }
    let value: f64 = s
        .parse()
        .unwrap_or_else(|_| panic!("not a percentage: {s:?}"));
    let decimals = s.split_once('.').map(|(_, d)| d.len());
    assert_eq!(decimals, Some(1), "percentages print one decimal: {s:?}");
    Some(value)
}

/// The printed measures (in `MEASURES` order) into a row.
fn printed_row(key: Key, cells: &[String]) -> Row {
    assert_eq!(cells.len(), N, "{cells:?}");
    assert!(
        cells[10].is_empty() || cells[10] == "—",
        "no spent cost without prices: {cells:?}"
    );
    let count =
        |i: usize| printed_int(&cells[i]).unwrap_or_else(|| panic!("no count in {cells:?}"));
    Row {
        key,
        programmed: printed_int(&cells[0]),
        counts: Counts {
            sent: count(1),
            delivered: count(2),
            failed: count(3),
            suppressed: count(4),
            expired: count(5),
            capped: count(6),
            segments: count(9),
            no_price: count(11),
        },
        indicator: printed_pct(&cells[7]),
        delivery: printed_pct(&cells[8]),
    }
}

fn parse_json(bytes: &[u8], by: &str) -> Parsed {
    let value: Value = serde_json::from_slice(bytes).expect("JSON");
    let keys = keys_of(by);
    let expected: BTreeSet<&str> = keys.iter().copied().chain(MEASURES).collect();
    let rows = value
        .as_array()
        .expect("an array")
        .iter()
        .map(|o| {
            let names: BTreeSet<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                names, expected,
                "exactly the group keys and the measures: {o}"
            );
            let count = |k: &str| o[k].as_i64().unwrap_or_else(|| panic!("{k} in {o}"));
            Row {
                key: keys
                    .iter()
                    .map(|k| o[*k].as_str().map(String::from))
                    .collect(),
                programmed: o["programmed"].as_i64(),
                counts: Counts {
                    sent: count("sent"),
                    delivered: count("delivered"),
                    failed: count("failed"),
                    suppressed: count("suppressed"),
                    expired: count("expired"),
                    capped: count("capped"),
                    segments: count("segments"),
                    no_price: count("no_price"),
                },
                indicator: o["indicator_pct"].as_f64(),
                delivery: o["delivery_rate_pct"].as_f64(),
            }
        })
        .collect();
    Parsed { rows, total: None }
}

fn parse_csv(bytes: &[u8], by: &str) -> Parsed {
    let body = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .expect("CSV starts with a UTF-8 BOM");
    let mut reader = csv::Reader::from_reader(body);
    let keys = keys_of(by);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let expected: Vec<String> = keys
        .iter()
        .copied()
        .chain(MEASURES)
        .map(String::from)
        .collect();
    assert_eq!(header, expected);
    let rows = reader
        .records()
        .map(|record| {
            let cells: Vec<String> = record.unwrap().iter().map(String::from).collect();
            let key = cells[..keys.len()]
                .iter()
                .map(|c| (!c.is_empty()).then(|| c.clone()))
                .collect();
            printed_row(key, &cells[keys.len()..])
        })
        .collect();
    Parsed { rows, total: None }
}

fn parse_table(bytes: &[u8], by: &str, titles: &[(&str, &str)]) -> Parsed {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for title in expected_header(by, titles) {
        assert!(lines[0].contains(&title), "{title:?} in {:?}", lines[0]);
    }
    assert!(
        lines[1].chars().all(|c| c == '-' || c == ' '),
        "{}",
        lines[1]
    );
    let keys = keys_of(by);
    let measures = |line: &str| -> Vec<String> {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        tokens[tokens.len() - N..]
            .iter()
            .map(|t| t.to_string())
            .collect()
    };
    let (last, body) = lines[2..].split_last().expect("a totals line");
    let rows = body
        .iter()
        .map(|line| {
            let key = line
                .split_whitespace()
                .take(keys.len())
                .map(|t| (t != "—").then(|| t.to_string()))
                .collect();
            printed_row(key, &measures(line))
        })
        .collect();
    assert!(last.starts_with("Total"), "{last}");
    Parsed {
        rows,
        total: Some(printed_row(Vec::new(), &measures(last))),
    }
}

fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The contents of the `<td>`/`<th>` cells of one table row.
fn html_cells(row: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut rest = row;
    while let Some(start) = rest.find("<t") {
        let after = &rest[start + 2..];
        if !(after.starts_with('d') || after.starts_with('h')) || after[1..].starts_with('e') {
            rest = after;
            continue;
        }
        let open_end = after.find('>').unwrap() + 1;
        let content = &after[open_end..];
        let close = content.find("</t").unwrap();
        cells.push(unescape_html(content[..close].trim()));
        rest = &content[close..];
        rest = &rest[rest.find('>').unwrap() + 1..];
    }
    cells
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let end = start
        + text[start..]
            .find(close)
            .unwrap_or_else(|| panic!("no {close}"));
    &text[start..end]
}

fn parse_html(bytes: &[u8], by: &str, titles: &[(&str, &str)]) -> Parsed {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let head = between(&text, "<thead>", "</thead>");
    assert_eq!(html_cells(head), expected_header(by, titles));
    let keys = keys_of(by);
    let rows = between(&text, "<tbody>", "</tbody>")
        .split("<tr>")
        .filter(|r| r.contains("<td"))
        .map(|r| {
            let cells = html_cells(r);
            let key = cells[..keys.len()]
                .iter()
                .map(|c| (c != "—").then(|| c.clone()))
                .collect();
            printed_row(key, &cells[cells.len() - N..])
        })
        .collect();
    let foot = html_cells(between(&text, "<tfoot>", "</tfoot>"));
    assert_eq!(foot[0], "Total");
    Parsed {
        rows,
        total: Some(printed_row(Vec::new(), &foot[foot.len() - N..])),
    }
}

/// The Python interpreter that has openpyxl (`ops/test` installs Debian's
/// python3-openpyxl for /usr/bin/python3). The tests that read workbooks
/// with it are ignored by a plain `cargo test`, and fail when run without it.
fn python_with_openpyxl() -> &'static str {
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|python| {
            Command::new(python)
                .args(["-c", "import openpyxl"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("needs Python's openpyxl, which is not installed: apt-get install python3-openpyxl (ops/test does)")
}

/// Every sheet of each workbook as openpyxl reads it: name, frozen panes,
/// column widths, and each cell's value, type, number format, boldness and
/// quote prefix.
fn read_workbooks(python: &str, files: &[PathBuf]) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, sys, openpyxl
books = []
for path in sys.argv[1:]:
    wb = openpyxl.load_workbook(path)
    sheets = []
    for ws in wb.worksheets:
        rows = [[{"v": c.value, "t": c.data_type, "fmt": c.number_format,
                  "bold": bool(c.font is not None and c.font.b), "qp": bool(c.quotePrefix)}
                 for c in row] for row in ws.iter_rows()]
        cols = [[d.min, d.max, d.width] for d in ws.column_dimensions.values() if d.min]
        sheets.append({"name": ws.title, "freeze": ws.freeze_panes, "rows": rows, "cols": cols})
    books.append(sheets)
print(json.dumps(books, default=str))
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .args(files)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "openpyxl could not read the workbooks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let books: Value = serde_json::from_slice(&out.stdout).unwrap();
    books.as_array().unwrap().clone()
}

/// One sheet into rows, checking how it is laid out on the way: bold frozen
/// header with the titles, integers as numbers, percentages with a percent
/// format, empty cells for no value, a bold totals row, wide enough columns,
/// and never a formula.
fn parse_sheet(sheet: &Value, by: &str, titles: &[(&str, &str)]) -> Parsed {
    let name = sheet["name"].as_str().unwrap();
    assert_eq!(sheet["freeze"], "A2", "sheet {name}: header row frozen");
    let rows = sheet["rows"].as_array().unwrap();
    let header: Vec<&Value> = rows[0].as_array().unwrap().iter().collect();
    let titles_seen: Vec<String> = header
        .iter()
        .map(|c| c["v"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles_seen, expected_header(by, titles), "sheet {name}");
    assert!(
        header.iter().all(|c| c["bold"] == true),
        "sheet {name}: bold header"
    );
    for row in rows {
        for c in row.as_array().unwrap() {
            assert_ne!(c["t"], "f", "sheet {name}: a formula in {c}");
        }
    }
    // Columns at least as wide as their title and their longest text.
    let widths: Vec<(u64, u64, f64)> = sheet["cols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d[0].as_u64().unwrap(),
                d[1].as_u64().unwrap(),
                d[2].as_f64().unwrap(),
            )
        })
        .collect();
    for col in 0..header.len() {
        let longest = rows
            .iter()
            .filter_map(|r| r[col]["v"].as_str().map(|s| s.chars().count()))
            .max()
            .unwrap_or(0);
        let width = widths
            .iter()
            .find(|(min, max, _)| (*min..=*max).contains(&(col as u64 + 1)))
            .map(|w| w.2)
            .unwrap_or_else(|| panic!("sheet {name}: column {col} has no width"));
        assert!(
            width >= longest as f64,
            "sheet {name}: column {col} is {width} wide for {longest} characters"
        );
    }

    let keys = keys_of(by);
    let (last, body) = rows[1..].split_last().expect("a totals row");
    let measures = |cells: &[Value], total: bool| -> Row {
        let m = &cells[cells.len() - N..];
        for c in m {
            if total && !c["v"].is_null() {
                assert_eq!(c["bold"], true, "sheet {name}: bold totals {c}");
            }
        }
        let int = |c: &Value| -> Option<i64> {
            if c["v"].is_null() {
                return None;
            }
            assert_eq!(c["t"], "n", "sheet {name}: a number {c}");
            assert!(!c["fmt"].as_str().unwrap().contains('%'), "{c}");
            Some(
                c["v"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("sheet {name}: an integer {c}")),
            )
        };
        let pct = |c: &Value| -> Option<f64> {
            if c["v"].is_null() {
                return None;
            }
            assert_eq!(c["t"], "n", "sheet {name}: a number {c}");
            assert!(
                c["fmt"].as_str().unwrap().contains('%'),
                "sheet {name}: percent format {c}"
            );
            Some(c["v"].as_f64().unwrap() * 100.0)
        };
        let count = |c: &Value| int(c).unwrap_or_else(|| panic!("sheet {name}: empty count"));
        Row {
            key: Vec::new(),
            programmed: int(&m[0]),
            counts: Counts {
                sent: count(&m[1]),
                delivered: count(&m[2]),
                failed: count(&m[3]),
                suppressed: count(&m[4]),
                expired: count(&m[5]),
                capped: count(&m[6]),
                segments: count(&m[9]),
                no_price: count(&m[11]),
            },
            indicator: pct(&m[7]),
            delivery: pct(&m[8]),
        }
    };
    let rows = body
        .iter()
        .map(|r| {
            let cells = r.as_array().unwrap();
            let mut row = measures(cells, false);
            row.key = cells[..keys.len()]
                .iter()
                .map(|c| c["v"].as_str().map(String::from))
                .collect();
            row
        })
        .collect();
    let last = last.as_array().unwrap();
    assert_eq!(last[0]["v"], "Total", "sheet {name}: a totals row");
    assert_eq!(last[0]["bold"], true, "sheet {name}: bold totals row");
    Parsed {
        rows,
        total: Some(measures(last, true)),
    }
}

/// Writes `report indicators --by BY --format FORMAT` to a file; returns its path.
fn indicators_file(ws: &Workspace, by: &str, format: &str, extra: &[&str]) -> PathBuf {
    let path = ws.path().join(format!(
        "indicadores-{}{}.{format}",
        by.replace(',', "-"),
        extra.join("").replace(['-', ' '], "")
    ));
    let mut args = vec![
        "report",
        "indicators",
        "--by",
        by,
        "--format",
        format,
        "--out",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ws.ok(&args);
    path
}

fn indicators(ws: &Workspace, by: &str, format: &str, extra: &[&str]) -> Vec<u8> {
    std::fs::read(indicators_file(ws, by, format, extra)).unwrap()
}

fn json_rows(ws: &Workspace, by: &str, extra: &[&str]) -> Vec<Row> {
    parse_json(&indicators(ws, by, "json", extra), by).rows
}

// ---------------------------------------------------------------------------
// Checks

fn close(a: Option<f64>, b: Option<f64>, tolerance: f64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= tolerance,
        (None, None) => true,
        _ => false,
    }
}

/// The rows of `parsed` equal the message table's counts per group and in
/// total; their percentages follow from their counts; and they say what the
/// JSON (`reference`) says, in the same order.
fn assert_reconciles(
    what: &str,
    parsed: &Parsed,
    sql: &BTreeMap<Key, Counts>,
    reference: &[Row],
    tolerance: f64,
) {
    let mut sum = Counts::default();
    let mut seen = BTreeSet::new();
    for row in &parsed.rows {
        let expected = sql.get(&row.key).copied().unwrap_or_default();
        assert_eq!(row.counts, expected, "{what}: group {:?}", row.key);
        assert!(
            seen.insert(row.key.clone()),
            "{what}: group {:?} twice",
            row.key
        );
        sum.add(&row.counts);
        let indicator = row
            .programmed
            .filter(|p| *p > 0)
            .map(|p| row.counts.sent as f64 * 100.0 / p as f64);
        assert!(
            close(row.indicator, indicator, tolerance),
            "{what}: indicator of {row:?}"
        );
        let delivery = (row.counts.sent > 0)
            .then(|| row.counts.delivered as f64 * 100.0 / row.counts.sent as f64);
        assert!(
            close(row.delivery, delivery, tolerance),
            "{what}: delivery rate of {row:?}"
        );
    }
    for key in sql.keys() {
        assert!(seen.contains(key), "{what}: no row for group {key:?}");
    }
    let mut total = Counts::default();
    for c in sql.values() {
        total.add(c);
    }
    assert_eq!(sum, total, "{what}: rows add up to the table's total");
    if let Some(t) = &parsed.total {
        assert_eq!(t.counts, total, "{what}: totals row");
        // The programmed total is the rows' sum, or none at all when the rows
        // mix units (messages of two channels, calls and workshops).
        let programmed: Option<i64> = parsed.rows.iter().map(|r| r.programmed).sum();
        assert!(
            t.programmed.is_none() || t.programmed == programmed,
            "{what}: programmed total {:?}, rows add up to {programmed:?}",
            t.programmed
        );
    }
    let strip = |rows: &[Row]| -> Vec<(Key, Option<i64>, Counts)> {
        rows.iter()
            .map(|r| (r.key.clone(), r.programmed, r.counts))
            .collect()
    };
    assert_eq!(
        strip(&parsed.rows),
        strip(reference),
        "{what}: same rows as the JSON"
    );
    for (row, json) in parsed.rows.iter().zip(reference) {
        assert!(
            close(row.indicator, json.indicator, tolerance),
            "{what}: {row:?} vs {json:?}"
        );
        assert!(
            close(row.delivery, json.delivery, tolerance),
            "{what}: {row:?} vs {json:?}"
        );
    }
}

fn programmed_of(rows: &[Row], key: &[Option<&str>]) -> Option<i64> {
    let key: Key = key.iter().map(|k| k.map(String::from)).collect();
    rows.iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no row {key:?} in {rows:?}"))
        .programmed
}

#[test]
#[ignore = "needs smtp-sink: run ops/test"]
fn every_format_reconciles_with_the_message_table_for_every_grouping() {
    let sink = SmtpSink::start(&["-f", "rcpt"]);
    let gateway = LocalServer::start(refuse);
    let down = LocalServer::start(hang_up);
    let ws = every_status_workspace(&sink, &gateway, &down);

    let statuses = statuses(&ws);
    for status in [
        "sent",
        "delivered",
        "failed",
        "suppressed",
        "expired",
        "cancelled",
    ] {
        assert!(
            statuses.get(status).copied().unwrap_or(0) > 0,
            "no {status} message: {statuses:?}"
        );
    }
    for status in ["queued", "sending", "retrying"] {
        assert!(!statuses.contains_key(status), "{statuses:?}");
    }

    let python = python_with_openpyxl();
    let mut workbooks = Vec::new();
    for by in GROUPINGS {
        let keys = keys_of(by);
        let sql = sql_groups(&ws, &keys);
        let json = parse_json(&indicators(&ws, by, "json", &[]), by);
        assert_reconciles(&format!("json --by {by}"), &json, &sql, &json.rows, 1e-9);
        let csv = parse_csv(&indicators(&ws, by, "csv", &[]), by);
        assert_reconciles(
            &format!("csv --by {by}"),
            &csv,
            &sql,
            &json.rows,
            0.05 + 1e-9,
        );
        let table = parse_table(&indicators(&ws, by, "table", &[]), by, &TITLES_ES);
        assert_reconciles(
            &format!("table --by {by}"),
            &table,
            &sql,
            &json.rows,
            0.05 + 1e-9,
        );
        let html = parse_html(&indicators(&ws, by, "html", &[]), by, &TITLES_ES);
        assert_reconciles(
            &format!("html --by {by}"),
            &html,
            &sql,
            &json.rows,
            0.05 + 1e-9,
        );
        workbooks.push((by, indicators_file(&ws, by, "xlsx", &[]), json.rows));
    }

    // Programmed figures: whole per activity and channel, from the targets per
    // entity, and none where the programme does not say (months of activities
    // without a monthly split, countries, languages).
    let by_activity = json_rows(&ws, "activity", &[]);
    assert_eq!(programmed_of(&by_activity, &[Some("SMS-REG")]), Some(60));
    assert_eq!(programmed_of(&by_activity, &[Some("MAIL-REG")]), Some(50));
    let by_channel = json_rows(&ws, "channel", &[]);
    assert_eq!(programmed_of(&by_channel, &[Some("sms")]), Some(60));
    assert_eq!(programmed_of(&by_channel, &[Some("email")]), Some(50));
    let by_entity = json_rows(&ws, "entity", &[]);
    for (entity, programmed) in [("AGS", 25), ("DGO", 25), ("OAX", 30), ("TAM", 30)] {
        assert_eq!(programmed_of(&by_entity, &[Some(entity)]), Some(programmed));
    }
    for by in ["country", "language", "activity,month"] {
        let rows = json_rows(&ws, by, &[]);
        assert!(
            rows.iter()
                .all(|r| r.programmed.is_none() && r.indicator.is_none()),
            "--by {by}: {rows:?}"
        );
    }

    let files: Vec<PathBuf> = workbooks.iter().map(|(_, f, _)| f.clone()).collect();
    let books = read_workbooks(python, &files);
    for ((by, _, json), sheets) in workbooks.iter().zip(&books) {
        let sheets = sheets.as_array().unwrap();
        let names: Vec<&str> = sheets.iter().map(|s| s["name"].as_str().unwrap()).collect();
        let expected: Vec<&str> = match *by {
            "activity,month" => vec!["actividad-mes", "actividad", "mes"],
            "activity" => vec!["actividad"],
            "entity" => vec!["entidad"],
            "channel" => vec!["canal"],
            "country" => vec!["país"],
            "language" => vec!["idioma"],
            other => panic!("{other}"),
        };
        assert_eq!(names, expected, "one sheet per grouping");
        let main = parse_sheet(&sheets[0], by, &TITLES_ES);
        let sql = sql_groups(&ws, &keys_of(by));
        assert_reconciles(&format!("xlsx --by {by}"), &main, &sql, json, 1e-9);
        // The other sheets: the same messages grouped by one key at a time.
        for (sheet, key) in sheets[1..].iter().zip(keys_of(by)) {
            let parsed = parse_sheet(sheet, key, &TITLES_ES);
            let reference = json_rows(&ws, key, &[]);
            assert_reconciles(
                &format!("xlsx --by {by}, sheet {key}"),
                &parsed,
                &sql_groups(&ws, &[key]),
                &reference,
                1e-9,
            );
        }
    }
}

/// A programme like the seeds' (a monthly packet over Sep–Dec 2021, calls that
/// aviso does not make but records, SMS with targets per entity), with a few
/// messages sent to files.
fn programme_workspace() -> Workspace {
    let ws = workspace("", 8);
    activity(
        &ws,
        &[
            "--code",
            "SMS-REG",
            "--name",
            "Envío de mensajes SMS",
            "--channel",
            "sms",
            "--programmed",
            "12",
            "--target",
            "AGS=3",
            "--target",
            "DGO=3",
            "--target",
            "OAX=3",
            "--target",
            "TAM=3",
        ],
    );
    activity(
        &ws,
        &[
            "--code",
            "CARPETA",
            "--name",
            "Carpeta informativa digital mensual",
            "--channel",
            "email",
            "--programmed",
            "10",
            "--from",
            "2021-09-01",
            "--to",
            "2021-12-31",
            "--split",
            "monthly",
        ],
    );
    activity(
        &ws,
        &[
            "--code",
            "LLAMADAS",
            "--name",
            "Intentos de llamada",
            "--programmed",
            "95000",
        ],
    );
    ws.ok(&[
        "activity",
        "record",
        "--code",
        "LLAMADAS",
        "--done",
        "1200",
        "--date",
        "2021-10-15",
    ]);
    ws.ok(&[
        "activity",
        "record",
        "--code",
        "LLAMADAS",
        "--done",
        "800",
        "--date",
        "2021-11-03",
    ]);
    let sms = campaign(&ws, &["--activity", "SMS-REG", "--channel", "sms"]);
    let packet = campaign(&ws, &["--activity", "CARPETA", "--channel", "email"]);
    start(&ws, sms);
    start(&ws, packet);
    drain(&ws, sms);
    drain(&ws, packet);
    mark_delivered(&ws, sms, 4);
    ws
}

#[test]
fn programmed_is_split_only_where_the_activity_says_how() {
    let ws = programme_workspace();

    // Evenly over the months of the activity's period, the first months taking
    // the remainder: 10 over Sep–Dec = 3 + 3 + 2 + 2.
    let rows = json_rows(&ws, "activity,month", &[]);
    let shares: Vec<(String, Option<i64>)> = rows
        .iter()
        .filter(|r| r.key[0].as_deref() == Some("CARPETA"))
        .filter(|r| r.key[1].as_deref().is_some_and(|m| m.starts_with("2021-")))
        .map(|r| (r.key[1].clone().unwrap(), r.programmed))
        .collect();
    assert_eq!(
        shares,
        [
            ("2021-09".to_string(), Some(3)),
            ("2021-10".to_string(), Some(3)),
            ("2021-11".to_string(), Some(2)),
            ("2021-12".to_string(), Some(2)),
        ]
    );
    let by_activity = json_rows(&ws, "activity", &[]);
    let whole = programmed_of(&by_activity, &[Some("CARPETA")]).unwrap();
    assert_eq!(
        shares.iter().map(|(_, p)| p.unwrap()).sum::<i64>(),
        whole,
        "the shares add up to the total"
    );
    // Sent this month, outside the period: nothing was programmed for it.
    for r in rows
        .iter()
        .filter(|r| r.key[0].as_deref() == Some("CARPETA"))
    {
        if !r.key[1].as_deref().unwrap().starts_with("2021-") {
            assert!(matches!(r.programmed, None | Some(0)), "{r:?}");
            assert_eq!(r.counts.sent, 8);
            assert_eq!(r.indicator, None, "no indicator against nothing programmed");
        }
    }
    // Activities without a monthly split have no monthly figure.
    for r in rows
        .iter()
        .filter(|r| r.key[0].as_deref() != Some("CARPETA"))
    {
        assert_eq!(r.programmed, None, "{r:?}");
    }
    // Recorded work counts in the month it was done; it has no delivery rate.
    let calls: Vec<(Option<String>, i64)> = rows
        .iter()
        .filter(|r| r.key[0].as_deref() == Some("LLAMADAS"))
        .map(|r| (r.key[1].clone(), r.counts.sent))
        .collect();
    assert_eq!(
        calls,
        [
            (Some("2021-10".into()), 1200),
            (Some("2021-11".into()), 800)
        ]
    );
    let llamadas = by_activity
        .iter()
        .find(|r| r.key[0].as_deref() == Some("LLAMADAS"))
        .unwrap();
    assert_eq!(
        (llamadas.programmed, llamadas.counts.sent),
        (Some(95_000), 2000)
    );
    assert!(close(
        llamadas.indicator,
        Some(2000.0 * 100.0 / 95_000.0),
        1e-9
    ));
    assert_eq!(llamadas.delivery, None);
    let sms = by_activity
        .iter()
        .find(|r| r.key[0].as_deref() == Some("SMS-REG"))
        .unwrap();
    assert_eq!(
        (sms.programmed, sms.counts.sent, sms.counts.delivered),
        (Some(12), 8, 4)
    );
    assert!(close(sms.delivery, Some(50.0), 1e-9));

    // Per entity only from targets given at creation.
    let by_activity_entity = json_rows(&ws, "activity,entity", &[]);
    for entity in ["AGS", "DGO", "OAX", "TAM"] {
        assert_eq!(
            programmed_of(&by_activity_entity, &[Some("SMS-REG"), Some(entity)]),
            Some(3)
        );
    }
    for r in by_activity_entity
        .iter()
        .filter(|r| r.key[0].as_deref() != Some("SMS-REG"))
    {
        assert_eq!(r.programmed, None, "{r:?}");
    }
    // Groupings no activity splits by: no programmed figure, in every format.
    for by in ["country", "language", "entity", "month"] {
        let rows = json_rows(&ws, by, &[]);
        assert!(!rows.is_empty());
        assert!(
            rows.iter()
                .all(|r| r.programmed.is_none() && r.indicator.is_none()),
            "--by {by}: {rows:?}"
        );
        let csv = parse_csv(&indicators(&ws, by, "csv", &[]), by);
        assert!(
            csv.rows.iter().all(|r| r.programmed.is_none()),
            "csv --by {by}"
        );
        let table = parse_table(&indicators(&ws, by, "table", &[]), by, &TITLES_ES);
        assert_eq!(table.total.unwrap().programmed, None, "table --by {by}");
    }

    // A period: only its months, and the shares of those months.
    let period = ["--from", "2021-10-01", "--to", "2021-11-30"];
    let rows = json_rows(&ws, "activity,month", &period);
    let seen: Vec<(String, String, Option<i64>, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.key[0].clone().unwrap(),
                r.key[1].clone().unwrap(),
                r.programmed,
                r.counts.sent,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("CARPETA".into(), "2021-10".into(), Some(3), 0),
            ("CARPETA".into(), "2021-11".into(), Some(2), 0),
            ("LLAMADAS".into(), "2021-10".into(), None, 1200),
            ("LLAMADAS".into(), "2021-11".into(), None, 800),
        ]
    );
    let html = String::from_utf8(indicators(&ws, "activity,month", "html", &period)).unwrap();
    assert!(
        html.contains("2021-10-01") && html.contains("2021-11-30"),
        "the period is shown"
    );
}

/// Well-formed XML (every element closed, attributes quoted, text escaped);
/// returns the text of its `<text>` elements.
fn svg_texts(svg: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut depth = 0usize;
    let mut root = None;
    let mut texts = Vec::new();
    let mut in_text = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if depth == 0 {
                    assert!(root.replace(name.clone()).is_none(), "one root element");
                }
                in_text = name == "text";
                if in_text {
                    texts.push(String::new());
                }
                depth += 1;
            }
            Ok(Event::Empty(e)) => {
                assert!(depth > 0, "an element outside the root: {e:?}");
            }
            Ok(Event::End(_)) => {
                depth = depth.checked_sub(1).expect("an end tag without its start");
                if in_text {
                    let last = texts.last_mut().unwrap();
                    *last = last.trim().to_string();
                }
                in_text = false;
            }
            Ok(Event::Text(t)) => {
                if in_text {
                    texts
                        .last_mut()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if in_text {
                    let entity = String::from_utf8_lossy(&r).into_owned();
                    let c = match entity.as_str() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unknown entity &{other};"),
                    };
                    texts.last_mut().unwrap().push_str(c);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "not well-formed XML at {}: {e}\n{svg}",
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(depth, 0, "every element is closed");
    assert_eq!(root.as_deref(), Some("svg"));
    texts
}

#[test]
fn the_chart_is_well_formed_svg_naming_every_activity() {
    let ws = programme_workspace();
    let svg = String::from_utf8(indicators(&ws, "activity", "svg", &[])).unwrap();
    let texts = svg_texts(&svg);
    for expected in [
        "SMS-REG",
        "CARPETA",
        "LLAMADAS",
        "Programados",
        "Enviados",
        "Actividad",
        "Cantidad",
    ] {
        assert!(
            texts.iter().any(|t| t == expected),
            "{expected:?} in {texts:?}"
        );
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Enviados frente a programados")),
        "a title: {texts:?}"
    );
    // Values on the bars: 95,000 calls programmed, 2,000 made.
    for value in ["95,000", "2,000", "12", "8", "10"] {
        assert!(texts.iter().any(|t| t == value), "{value:?} in {texts:?}");
    }
    // Readable in black and white: programmed white with a black outline, sent solid dark.
    assert!(svg.contains("fill=\"#FFFFFF\""), "white bars");
    assert!(svg.contains("stroke=\"#000000\""), "black outlines");
    assert!(svg.contains("fill=\"#2D2D2D\""), "dark bars");

    // By activity and month: one panel per activity, months on the x axis.
    let svg = String::from_utf8(indicators(&ws, "activity,month", "svg", &[])).unwrap();
    let texts = svg_texts(&svg);
    for expected in ["2021-09", "2021-10", "2021-11", "2021-12", "Mes"] {
        assert!(
            texts.iter().any(|t| t == expected),
            "{expected:?} in {texts:?}"
        );
    }
    for code in ["SMS-REG", "CARPETA", "LLAMADAS"] {
        assert!(
            texts.iter().any(|t| t.starts_with(code)),
            "a panel for {code}: {texts:?}"
        );
    }
    for by in ["entity", "month", "country,language"] {
        let svg = String::from_utf8(indicators(&ws, by, "svg", &[])).unwrap();
        assert!(!svg_texts(&svg).is_empty(), "--by {by}");
    }
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("needs chromium, which is not installed: apt-get install chromium (ops/test does)")
}

/// A 1200×900 screenshot of `page` taken by headless Chromium.
fn screenshot(chromium: &str, page: &Path, png: &Path) {
    use std::os::unix::process::CommandExt as _;
    let profile = tempfile::tempdir().unwrap();
    let log = profile.path().join("chromium.log");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // Chromium and the helpers it started, all in the group we gave it.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "chromium took more than {WAIT:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success() && png.exists(),
        "chromium failed ({status}):\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The share of pixels that are not white, and the number of pixels in the
/// chart's dark bar colour (#2D2D2D).
fn ink(png_path: &Path) -> (f64, usize) {
    let mut decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "a colour image: {:?}", info.color_type);
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels
        .iter()
        .filter(|p| p[..3].iter().any(|v| *v < 230))
        .count();
    let dark = pixels
        .iter()
        .filter(|p| p[..3].iter().all(|v| v.abs_diff(45) <= 6))
        .count();
    (inked as f64 / pixels.len() as f64, dark)
}

#[test]
fn the_html_page_is_self_contained() {
    let ws = programme_workspace();
    let page = indicators_file(&ws, "activity", "html", &[]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<html lang=\"es\">"));
    assert!(html.contains("<title>") && html.contains("Periodo: todo el registro"));
    assert!(
        html.contains("<svg") && html.contains("</svg>"),
        "the chart inline"
    );
    for external in ["<link", "<script", "src=", "href=", "url(", "@import"] {
        assert!(
            !html.contains(external),
            "nothing loaded from elsewhere: {external}"
        );
    }
    // Numbers with thousands separators, percentages with one decimal, a totals row.
    let parsed = parse_html(html.as_bytes(), "activity", &TITLES_ES);
    assert!(html.contains(">95,000<"));
    let llamadas = parsed
        .rows
        .iter()
        .find(|r| r.key[0].as_deref() == Some("LLAMADAS"))
        .unwrap();
    assert_eq!(llamadas.indicator, Some(2.1));
    assert_eq!(parsed.total.unwrap().counts.sent, 2000 + 8 + 8);
}

#[test]
#[ignore = "needs chromium: run ops/test"]
fn the_html_page_renders_in_headless_chromium() {
    let chromium = chromium();
    let ws = programme_workspace();
    let page = indicators_file(&ws, "activity", "html", &[]);
    let png = ws.path().join("indicadores.png");
    screenshot(chromium, &page, &png);
    let (share, dark) = ink(&png);
    assert!(
        share > 0.02,
        "the page looks blank: {:.2}% of pixels not white",
        share * 100.0
    );
    assert!(
        dark > 500,
        "the chart's dark bars are not visible ({dark} pixels)"
    );
}

/// A formula-like activity or campaign name (spreadsheets run a cell that
/// starts with `=`, `+`, `-` or `@`).
const FORMULA: &str = r#"=HYPERLINK("http://x","y")"#;

/// Two activities and two sent campaigns named like formulas; the campaigns' ids.
fn formula_named_workspace() -> (Workspace, i64, i64) {
    let ws = workspace("", 4);
    let formula = FORMULA;
    activity(
        &ws,
        &[
            "--code",
            "INJ",
            "--name",
            formula,
            "--channel",
            "email",
            "--programmed",
            "4",
        ],
    );
    activity(
        &ws,
        &[
            "--code=-NEG",
            "--name",
            "+Negativo",
            "--channel",
            "sms",
            "--programmed",
            "4",
        ],
    );
    let email = campaign(
        &ws,
        &["--activity", "INJ", "--channel", "email", "--name", formula],
    );
    let sms = campaign(
        &ws,
        &["--activity=-NEG", "--channel", "sms", "--name", "@SUM(A1)"],
    );
    start(&ws, email);
    start(&ws, sms);
    drain(&ws, email);
    drain(&ws, sms);
    (ws, email, sms)
}

#[test]
fn names_that_look_like_formulas_stay_inert_in_csv_and_html() {
    let (ws, email, sms) = formula_named_workspace();
    let formula = FORMULA;

    // CSV: every cell that would run as a formula starts with a quote.
    let inert = |bytes: &[u8]| {
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(body);
        let cells: Vec<String> = reader
            .records()
            .flat_map(|r| r.unwrap().iter().map(String::from).collect::<Vec<_>>())
            .collect();
        for cell in &cells {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "{cell:?} would run as a formula"
            );
        }
        cells
    };
    let cells = inert(&indicators(&ws, "activity", "csv", &[]));
    assert!(cells.contains(&"'-NEG".to_string()), "{cells:?}");
    let ledger = ws.path().join("ledger.csv");
    ws.ok(&[
        "report",
        "messages",
        "--campaign",
        &email.to_string(),
        "--out",
        ledger.to_str().unwrap(),
    ]);
    let cells = inert(&std::fs::read(&ledger).unwrap());
    assert!(cells.contains(&format!("'{formula}")), "{cells:?}");
    ws.ok(&[
        "report",
        "messages",
        "--campaign",
        &sms.to_string(),
        "--out",
        ledger.to_str().unwrap(),
    ]);
    let cells = inert(&std::fs::read(&ledger).unwrap());
    assert!(cells.contains(&"'@SUM(A1)".to_string()), "{cells:?}");

    // HTML: the name as text, escaped.
    let html = String::from_utf8(indicators(&ws, "activity", "html", &[])).unwrap();
    assert!(html.contains("=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)"));
}

#[test]
#[ignore = "needs Python's openpyxl: run ops/test"]
fn names_that_look_like_formulas_stay_inert_in_xlsx() {
    let python = python_with_openpyxl();
    let (ws, _, _) = formula_named_workspace();
    // Strings with a quote prefix, never formulas.
    let workbook = indicators_file(&ws, "activity,channel", "xlsx", &[]);
    let books = read_workbooks(python, &[workbook]);
    let mut found = BTreeSet::new();
    for sheet in books[0].as_array().unwrap() {
        for row in sheet["rows"].as_array().unwrap() {
            for c in row.as_array().unwrap() {
                assert_ne!(c["t"], "f", "a formula: {c}");
                if let Some(text) = c["v"].as_str() {
                    if text.starts_with(['=', '+', '-', '@']) {
                        assert_eq!(c["t"], "s", "a string: {c}");
                        assert_eq!(c["qp"], true, "with a quote prefix: {c}");
                        found.insert(text.to_string());
                    }
                }
            }
        }
    }
    for text in [FORMULA, "-NEG", "+Negativo"] {
        assert!(found.contains(text), "{text:?} in the workbook: {found:?}");
    }
}

#[test]
fn the_message_ledger_lists_each_message_masked_and_filters_by_status() {
    let gateway = LocalServer::start(refuse);
    let ws = workspace(
        &format!(
            "[providers.sms-rechazo]\nchannel = \"sms\"\nurl = \"webhook+http://127.0.0.1:{}/send\"\n",
            gateway.port
        ),
        6,
    );
    activity(
        &ws,
        &[
            "--code",
            "SMS-REG",
            "--name",
            "SMS",
            "--channel",
            "sms",
            "--programmed",
            "6",
        ],
    );
    activity(
        &ws,
        &[
            "--code",
            "MAIL-REG",
            "--name",
            "Correo",
            "--channel",
            "email",
            "--programmed",
            "6",
        ],
    );
    ws.ok(&["suppress", "add", &phone_of(1), "--reason", "opt_out"]);
    let sms = campaign(
        &ws,
        &[
            "--activity",
            "SMS-REG",
            "--channel",
            "sms",
            "--provider",
            "sms-rechazo",
        ],
    );
    let email = campaign(&ws, &["--activity", "MAIL-REG", "--channel", "email"]);
    start(&ws, sms);
    start(&ws, email);
    drain(&ws, sms);
    drain(&ws, email);

    let ledger: Value = ws.json(&[
        "report",
        "messages",
        "--campaign",
        &sms.to_string(),
        "--format",
        "json",
    ]);
    let rows = ledger.as_array().unwrap();
    assert_eq!(rows.len(), 6, "one row per message: {ledger}");
    let by_contact: BTreeMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["contact_id"].as_str().unwrap(), r))
        .collect();
    for (i, (contact, row)) in by_contact.iter().enumerate() {
        assert_eq!(*contact, format!("C{i:02}"));
        let phone = phone_of(i);
        let masked = format!(
            "{}{}{}",
            &phone[..2],
            "*".repeat(phone.len() - 6),
            &phone[phone.len() - 4..]
        );
        assert_eq!(row["address"], masked.as_str(), "{row}");
        let status = if i == 1 { "suppressed" } else { "failed" };
        assert_eq!(row["status"], status, "{row}");
        for field in [
            "message_id",
            "run_id",
            "campaign",
            "channel",
            "entity",
            "country",
            "language",
            "attempts",
            "last_code",
            "last_reason",
            "created_at",
            "sent_at",
            "delivered_at",
            "finished_at",
        ] {
            assert!(row.get(field).is_some(), "{field} in {row}");
        }
        if status == "failed" {
            assert!(row["attempts"].as_i64().unwrap() >= 1, "{row}");
            assert!(
                row["last_code"].as_str().is_some_and(|c| c.contains("400")),
                "{row}"
            );
        }
    }
    let text = ledger.to_string();
    for i in 0..6 {
        assert!(
            !text.contains(&phone_of(i)[2..]),
            "a whole number leaked: {text}"
        );
    }

    // Only the failures, who did not receive it and why.
    let failed: Value = ws.json(&[
        "report",
        "messages",
        "--campaign",
        &sms.to_string(),
        "--status",
        "failed",
        "--format",
        "json",
    ]);
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().all(|r| r["status"] == "failed"));
    let csv_path = ws.path().join("fallidos.csv");
    ws.ok(&[
        "report",
        "messages",
        "--campaign",
        &sms.to_string(),
        "--status",
        "failed,suppressed",
        "--format",
        "csv",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    // Owner-only, and nothing left under its temporary name.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&csv_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!ws.path().join(".fallidos.csv.partial").exists());
    // Into a folder that does not exist: the error names the file.
    let missing = ws.path().join("no-such-folder").join("fallidos.csv");
    let err = ws.fails(
        &[
            "report",
            "messages",
            "--campaign",
            &sms.to_string(),
            "--out",
            missing.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("no-such-folder/fallidos.csv"), "{err}");
    // A reader that stops early (`| head`) is not an error.
    let mut reader_gone = ws
        .command(&["report", "messages", "--campaign", &sms.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(reader_gone.stdout.take());
    let gone = reader_gone.wait_with_output().unwrap();
    assert!(
        gone.status.success(),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );

    let csv_bytes = std::fs::read(&csv_path).unwrap();
    let mut reader =
        csv::Reader::from_reader(csv_bytes.strip_prefix(b"\xEF\xBB\xBF").expect("BOM"));
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))
    };
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 6);
    for record in &records {
        let address = record[column("address")].trim_start_matches('\'');
        assert!(
            address.starts_with('+') && address.contains("******"),
            "{address}"
        );
        assert!(["failed", "suppressed"].contains(&&record[column("status")]));
    }

    // E-mail addresses: the first letter and the domain.
    let ledger: Value = ws.json(&[
        "report",
        "messages",
        "--campaign",
        &email.to_string(),
        "--format",
        "json",
    ]);
    let addresses: Vec<&str> = ledger
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["c***@example.org"; 6]);
    assert!(!ledger.to_string().contains("c1@example.org"));
    let refused = ws.run(&[
        "report",
        "messages",
        "--campaign",
        &email.to_string(),
        "--status",
        "lost",
    ]);
    assert!(!refused.status.success(), "an unknown status is refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lost"));
}

#[test]
fn english_titles_with_lang_en_and_spanish_by_default() {
    let ws = programme_workspace();
    let en = ["--lang", "en"];
    let table = parse_table(
        &indicators(&ws, "activity", "table", &en),
        "activity",
        &TITLES_EN,
    );
    assert_eq!(table.rows.len(), 3);
    let text = String::from_utf8(indicators(&ws, "activity", "table", &en)).unwrap();
    assert!(!text.contains("Programados"), "{text}");
    let text = String::from_utf8(indicators(&ws, "activity", "table", &[])).unwrap();
    assert!(text.contains("Programados"), "{text}");

    let html = String::from_utf8(indicators(&ws, "activity", "html", &en)).unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("Period: all records"));
    parse_html(html.as_bytes(), "activity", &TITLES_EN);
    assert!(!html.contains("Programados") && !html.contains("Enviados"));

    let svg = String::from_utf8(indicators(&ws, "activity,month", "svg", &en)).unwrap();
    let texts = svg_texts(&svg);
    for expected in ["Programmed", "Sent", "Month", "Count"] {
        assert!(
            texts.iter().any(|t| t == expected),
            "{expected:?} in {texts:?}"
        );
    }
    assert!(texts
        .iter()
        .any(|t| t.starts_with("Sent against programmed")));
}

#[test]
#[ignore = "needs Python's openpyxl: run ops/test"]
fn english_sheet_titles_with_lang_en() {
    let python = python_with_openpyxl();
    let ws = programme_workspace();
    let en = ["--lang", "en"];
    let workbook = indicators_file(&ws, "activity,month", "xlsx", &en);
    let books = read_workbooks(python, &[workbook]);
    let sheets = books[0].as_array().unwrap();
    let names: Vec<&str> = sheets.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["activity-month", "activity", "month"]);
    let main = parse_sheet(&sheets[0], "activity,month", &TITLES_EN);
    let json = json_rows(&ws, "activity,month", &[]);
    assert_eq!(
        main.rows
            .iter()
            .map(|r| (&r.key, r.programmed, r.counts))
            .collect::<Vec<_>>(),
        json.iter()
            .map(|r| (&r.key, r.programmed, r.counts))
            .collect::<Vec<_>>()
    );
}
