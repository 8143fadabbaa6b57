//! Cost: the estimate of a run before it starts equals what is then sent,
//! country by country (on the demo, and through a real Kannel, whose SMS
//! centre counts the parts); the indicators' spent cost reconciles with the
//! estimates; a budget refuses a run; price mistakes name file, table and key.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::peers::Kannel;
use crate::support::{aviso_bin, Workspace};

/// `aviso --config CONFIG ARGS` in `dir`, with no database or provider from
/// the environment: the configuration (a demo's) says everything.
pub(crate) fn configured(dir: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(aviso_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .env_remove("AVISO_DATABASE_URL")
        .env_remove("AVISO_SMS_PROVIDER")
        .env_remove("AVISO_EMAIL_PROVIDER")
        .env("AVISO_LOG", "warn")
        .output()
        .unwrap()
}

/// [`configured`], which must succeed; its stdout.
fn with_config(dir: &Path, config: &Path, args: &[&str]) -> String {
    let out = configured(dir, config, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aviso {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A decimal amount ("1523.58") in millionths, to compare money exactly.
fn micros(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    whole.parse::<i64>().unwrap() * 1_000_000 + format!("{fraction:0<6}").parse::<i64>().unwrap()
}

/// Per country: (messages sent, segments) of a campaign's ledger (JSON).
fn sent_by_country(ledger: &Value) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for m in ledger.as_array().unwrap() {
        if m["status"] != "sent" && m["status"] != "delivered" {
            assert!(
                m["segments"].is_null(),
                "only sent messages have segments: {m}"
            );
            continue;
        }
        let country = m["country"].as_str().unwrap_or("none").to_string();
        let slot = out.entry(country).or_default();
        slot.0 += 1;
        slot.1 += m["segments"]
            .as_i64()
            .unwrap_or_else(|| panic!("segments of {m}"));
    }
    out
}

/// Per country: (recipients, segments) of an estimate.
fn estimated_by_country(estimate: &Value) -> BTreeMap<String, (i64, i64)> {
    estimate["by_country"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_string(),
                (
                    l["recipients"].as_i64().unwrap(),
                    l["segments"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn on_the_demo_the_estimate_equals_the_segments_sent_country_by_country() {
    let ws = Workspace::new();
    ws.ok(&["demo", "--dir", "demo"]);
    let config = ws.path().join("demo/aviso.toml");
    let aviso = |args: &[&str]| with_config(ws.path(), &config, args);
    let json = |args: &[&str]| -> Value { serde_json::from_str(&aviso(args)).unwrap() };

    // A third SMS send to the same audience, estimated before it starts.
    let created = json(&[
        "campaign",
        "create",
        "--activity",
        "SMS-REG",
        "--template",
        "recordatorio_voto",
        "--channel",
        "sms",
        "--list",
        "ciudadania",
        "--segment",
        "credential=CPVE",
        "--name",
        "tercer envío",
        "--json",
    ]);
    let id = created["id"].as_i64().unwrap().to_string();
    let estimate = json(&["campaign", "estimate", &id, "--json"]);
    assert_eq!(
        created["estimate"], estimate,
        "create prints the same estimate"
    );
    assert_eq!(estimate["currency"], "MXN");
    assert!(estimate["segments"].as_i64().unwrap() > estimate["recipients"].as_i64().unwrap());
    // Countries without a price are "no price", not free.
    let no_price: Vec<&str> = estimate["no_price"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        no_price.contains(&"IT") && !no_price.contains(&"US"),
        "{no_price:?}"
    );
    let italy = estimate["by_country"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "IT")
        .unwrap();
    assert!(
        italy["cost"].is_null() && italy["unpriced"].as_i64() > Some(0),
        "{italy}"
    );
    let text = aviso(&["campaign", "estimate", &id]);
    assert!(text.contains("no price"), "{text}");

    aviso(&["campaign", "start", &id]);
    aviso(&["worker", "--once"]);
    let ledger = json(&["report", "messages", "--campaign", &id, "--format", "json"]);
    let sent = sent_by_country(&ledger);
    assert_eq!(
        estimated_by_country(&estimate),
        sent,
        "estimate vs. sent, by country"
    );
    let suppressed = ledger
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "suppressed")
        .count() as i64;
    assert_eq!(estimate["suppressed"].as_i64(), Some(suppressed));

    // The indicators' spent cost is the estimates' cost of the three SMS sends,
    // country by country, to the millionth, in JSON and CSV alike.
    let mut expected: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for campaign in ["1", "4", id.as_str()] {
        let e = json(&["campaign", "estimate", campaign, "--json"]);
        assert_eq!(e["channel"], "sms");
        for l in e["by_country"].as_array().unwrap() {
            let slot = expected
                .entry(l["key"].as_str().unwrap().into())
                .or_default();
            slot.0 += l["segments"].as_i64().unwrap();
            slot.1 += l["cost"].as_str().map(micros).unwrap_or(0);
            slot.2 += l["unpriced"].as_i64().unwrap();
        }
    }
    let rows = json(&[
        "report",
        "indicators",
        "--by",
        "activity,country",
        "--format",
        "json",
    ]);
    let mut reported: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for r in rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["activity"] == "SMS-REG")
    {
        assert_eq!(r["currency"], "MXN");
        reported.insert(
            r["country"].as_str().unwrap().into(),
            (
                r["segments"].as_i64().unwrap(),
                r["spent"].as_str().map(micros).unwrap_or(0),
                r["no_price"].as_i64().unwrap(),
            ),
        );
    }
    assert_eq!(reported, expected);
    let csv = aviso(&[
        "report",
        "indicators",
        "--by",
        "activity,country",
        "--format",
        "csv",
    ]);
    let mut reader = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        if &record[col("activity")] != "SMS-REG" {
            continue;
        }
        let (segments, spent, _) = expected[&record[col("country")]];
        assert_eq!(record[col("segments")].parse::<i64>().unwrap(), segments);
        let cell = &record[col("spent")];
        assert_eq!(if cell.is_empty() { 0 } else { micros(cell) }, spent);
    }
}

/// Contacts in three countries and both languages: Spanish keeps its
/// accents (UCS-2), English is GSM-7, long names add parts.
const KANNEL_CONTACTS: &str =
    "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma\n\
    K1,José María,Pérez Hernández,OAX,US,,1,2135550101,es\n\
    K2,Ann,Lee,DGO,US,,1,2135550102,en\n\
    K3,Guadalupe Concepción,Ramírez de la Fuente Villaseñor,TAM,ES,,34,612345678,es\n\
    K4,Luis,Soto,AGS,ES,,34,612345679,en\n\
    K5,María,Núñez,OAX,MX,,52,5512345678,es\n";

/// A campaign of the registration SMS to list `k` (activity SMS); its id.
fn sms_campaign(ws: &Workspace, extra: &[&str]) -> String {
    let mut args = vec![
        "campaign",
        "create",
        "--activity",
        "SMS",
        "--template",
        "registro_abierto",
        "--list",
        "k",
        "--json",
    ];
    args.extend_from_slice(extra);
    ws.json(&args)["id"].as_i64().unwrap().to_string()
}

#[test]
#[ignore = "needs Kannel: run ops/test"]
fn kannel_receives_exactly_the_estimated_parts_country_by_country() {
    let kannel = Kannel::start();
    // Kannel's workspace (see `sms::setup`): its templates keep every accent,
    // so Spanish goes as UCS-2; it also has contacts of its own in another list.
    let s = crate::sms::setup(&kannel, 1);
    let ws = &s.ws;
    let settings = std::fs::read_to_string(ws.path().join("aviso.toml")).unwrap();
    ws.write(
        "aviso.toml",
        format!("{settings}[prices]\ncurrency = \"USD\"\n[prices.sms]\nUS = 0.0079\nES = 0.0712\n"),
    );
    let contacts = ws.write("k.csv", KANNEL_CONTACTS);
    ws.ok(&["contacts", "import", &contacts, "--list", "k"]);
    let id = sms_campaign(ws, &[]);
    let estimate = ws.json(&["campaign", "estimate", &id, "--json"]);
    let encodings: Vec<(&str, &str)> = estimate["by_encoding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["language"].as_str().unwrap(),
                l["encoding"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(encodings, [("en", "GSM-7"), ("es", "UCS-2")]);
    assert_eq!(estimate["no_price"], serde_json::json!(["MX"]));
    // 0.0079 and 0.0712 per segment, summed exactly.
    let us_es: i64 = estimate["by_country"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["key"] != "MX")
        .map(|l| {
            let price = if l["key"] == "US" { 7_900 } else { 71_200 };
            assert_eq!(
                micros(l["cost"].as_str().unwrap()),
                price * l["segments"].as_i64().unwrap()
            );
            price * l["segments"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(micros(estimate["cost"].as_str().unwrap()), us_es);

    ws.ok(&["campaign", "start", &id]);
    let report = ws.json(&["worker", "--once", "--json"]);
    assert_eq!(report["sent"], 5, "{report}");
    assert_eq!(kannel.wait_for_received(5, Duration::from_secs(60)), 5);
    let country_of = |to: &str| {
        [("+1", "US"), ("+34", "ES"), ("+52", "MX")]
            .into_iter()
            .find(|(code, _)| to.starts_with(code))
            .map(|(_, country)| country)
            .unwrap_or_else(|| panic!("unexpected number {to}"))
    };
    let mut parts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for sms in kannel.received() {
        let country = country_of(&sms.to).to_string();
        let slot = parts.entry(country).or_default();
        slot.0 += 1;
        slot.1 += sms.parts as i64;
    }
    assert_eq!(
        estimated_by_country(&estimate),
        parts,
        "estimate vs. the SMS centre's parts"
    );
    assert!(
        parts.values().any(|(_, p)| *p > 1),
        "some messages take several parts"
    );
    let ledger = ws.json(&["report", "messages", "--campaign", &id, "--format", "json"]);
    assert_eq!(
        sent_by_country(&ledger),
        parts,
        "the ledger records what Kannel got"
    );
}

#[test]
fn a_run_over_budget_is_refused_by_start_and_by_the_scheduler() {
    let mut ws = Workspace::new();
    let outbox = format!("file://{}", ws.path().join("out").display());
    ws.env("AVISO_SMS_PROVIDER", &outbox);
    ws.write(
        "aviso.toml",
        "[prices]\ncurrency = \"MXN\"\nbudget = 0.50\n[prices.sms]\nUS = 0.35\nES = 0.35\nMX = 0.35\n",
    );
    let contacts = ws.write("k.csv", KANNEL_CONTACTS);
    ws.ok(&["contacts", "import", &contacts, "--list", "k"]);
    ws.ok(&[
        "activity",
        "create",
        "--code",
        "SMS",
        "--name",
        "SMS",
        "--channel",
        "sms",
        "--programmed",
        "5",
    ]);
    let create = |extra: &[&str]| sms_campaign(&ws, extra);
    // The budget of [prices] (0.50 MXN) is below five SMS at 0.35.
    let first = create(&[]);
    let shown = ws.ok(&["campaign", "estimate", &first]);
    assert!(shown.contains("budget 0.50 MXN: OVER it"), "{shown}");
    let refused = ws.fails(&["campaign", "start", &first], 1);
    assert!(
        refused.contains("campaign ") && refused.contains("is over the budget of 0.50 MXN"),
        "{refused}"
    );
    let status = ws.json(&["campaign", "status", &first, "--json"]);
    assert_eq!(
        (status["runs"].as_i64(), status["total"].as_i64()),
        (Some(0), Some(0))
    );

    // A campaign's own budget wins over the table's.
    let generous = create(&["--budget", "1000"]);
    ws.ok(&["campaign", "start", &generous]);
    assert_eq!(
        ws.json(&["campaign", "status", &generous, "--json"])["total"],
        5
    );

    // The scheduler refuses it too, and pauses the campaign with the reason.
    let now = chrono::Utc::now().to_rfc3339();
    let scheduled = create(&["--budget", "0.01", "--at", &now]);
    ws.ok(&["worker", "--once"]);
    let status = ws.json(&["campaign", "status", &scheduled, "--json"]);
    assert_eq!(status["state"], "paused", "{status}");
    assert_eq!(status["runs"], 0, "{status}");
    assert!(
        status["pause_reason"]
            .as_str()
            .unwrap()
            .contains("over the budget of 0.01 MXN"),
        "{status}"
    );
    let bad = ws.write(
        "bad.toml",
        "[prices]\ncurrency = \"MXN\"\n[prices.sms]\nXX = 0.35\n",
    );
    let err = ws.fails(&["--config", &bad, "campaign", "estimate", &first], 1);
    assert!(
        err.contains("bad.toml: [prices.sms] XX: unknown country"),
        "{err}"
    );
    let bad = ws.write(
        "neg.toml",
        "[prices]\ncurrency = \"MXN\"\n[prices.email]\nUS = -1\n",
    );
    let err = ws.fails(&["--config", &bad, "campaign", "estimate", &first], 1);
    assert!(
        err.contains("neg.toml: [prices.email] US: a price cannot be negative"),
        "{err}"
    );
}
