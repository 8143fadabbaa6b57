//! The call centre: the work list of the citizens a campaign could not reach,
//! and its results brought back into the calls activity's indicator.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::cost::configured;
use crate::support::peers::SmtpSink;
use crate::support::Workspace;

/// The work list's rows, by column name, without the byte-order mark.
fn rows_of(csv_text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let body = csv_text
        .strip_prefix('\u{feff}')
        .expect("the work list starts with a UTF-8 BOM");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The LLAMADAS row of the indicators.
fn llamadas(dir: &Path, config: &Path) -> i64 {
    let out = configured(dir, config, &["report", "indicators", "--format", "json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["activity"] == "LLAMADAS")
        .unwrap()["sent"]
        .as_i64()
        .unwrap()
}

#[test]
fn the_demos_unreached_citizens_round_trip_through_the_call_centre_into_llamadas() {
    let ws = Workspace::new();
    ws.ok(&["demo", "--dir", "demo"]);
    let config = ws.path().join("demo/aviso.toml");
    let aviso = |args: &[&str]| configured(ws.path(), &config, args);

    // The registration e-mail (campaign 2) could not reach the CPVE holders
    // without an e-mail address: the call centre gets them, by entity.
    let list = ws.path().join("llamar.csv");
    let out = aviso(&[
        "calls",
        "export",
        "--campaign",
        "2",
        "--out",
        list.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let mode = std::fs::metadata(&list).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the work list holds personal data");
    let (header, rows) = rows_of(&std::fs::read_to_string(&list).unwrap());
    assert_eq!(header, aviso::calls::WORK_LIST_COLUMNS);
    let status: Value =
        serde_json::from_slice(&aviso(&["campaign", "status", "2", "--json"]).stdout).unwrap();
    assert_eq!(
        rows.len() as i64,
        status["no_address"].as_i64().unwrap(),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "{} citizens to call",
            aviso::report::thousands(rows.len() as i64)
        )),
        "{said}"
    );
    let entities: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert!(entities.windows(2).all(|w| w[0] <= w[1]), "by entity");
    for r in &rows {
        assert!(
            r[4].starts_with("'+"),
            "E.164 kept from running as a formula: {r:?}"
        );
        assert!(!r[5].starts_with(['=', '+', '-', '@']), "{r:?}");
        assert_eq!(r[7], "no e-mail address");
        assert!(r[6] == "es" || r[6] == "en");
    }
    // The SMS send (campaign 1) reached every CPVE holder with a phone; those
    // without any phone cannot be called either, and are counted.
    let out = aviso(&["calls", "export", "--campaign", "1"]);
    let (_, sms_rows) = rows_of(&String::from_utf8_lossy(&out.stdout));
    assert!(sms_rows.is_empty(), "{sms_rows:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("516 unreached citizens have no phone at all and are not on the list"),
        "{said}"
    );

    // The call centre calls the first twenty and writes the results in.
    let before = llamadas(ws.path(), &config);
    let mut results = csv::Writer::from_writer(Vec::new());
    results.write_record(&header).unwrap();
    for (i, r) in rows.iter().take(20).enumerate() {
        let mut r = r.clone();
        r[9] = "2021-12-06".into();
        r[10] = match i {
            18 => "Ciudadano fallecido",
            19 => "No contestó",
            _ => "Contestó",
        }
        .into();
        results.write_record(&r).unwrap();
    }
    let mut bad_date = rows[20].clone();
    bad_date[9] = "6 de diciembre".into();
    bad_date[10] = "Contestó".into();
    results.write_record(&bad_date).unwrap();
    let mut unknown = rows[21].clone();
    unknown[0] = "NOBODY".into();
    unknown[9] = "2021-12-06".into();
    unknown[10] = "Contestó".into();
    results.write_record(&unknown).unwrap();
    let file = ws.write("resultados.csv", results.into_inner().unwrap());
    let out = aviso(&["calls", "import", &file, "--activity", "LLAMADAS", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejected rows make the exit status 1"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 22: rejected: date (fecha)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 23: rejected: contact \"NOBODY\""),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &summary["read"],
            &summary["imported"],
            &summary["rejected"],
            &summary["new_attempts"]
        ),
        (
            &Value::from(22),
            &Value::from(20),
            &Value::from(2),
            &Value::from(20)
        )
    );
    assert_eq!(
        llamadas(ws.path(), &config),
        before + 20,
        "the attempts fill the indicator"
    );

    // The same file again counts nothing twice.
    let out = aviso(&["calls", "import", &file, "--activity", "LLAMADAS", "--json"]);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&again["new_attempts"], &again["already_recorded"]),
        (&Value::from(0), &Value::from(20))
    );
    assert_eq!(llamadas(ws.path(), &config), before + 20);

    // The deceased citizen is never messaged again, on any channel.
    let deceased = rows[18][4].trim_start_matches('\'').to_string();
    let listed: Value =
        serde_json::from_slice(&aviso(&["suppress", "list", "--json"]).stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["address"] == deceased.as_str()
                && s["reason"] == "deceased"
                && s["scope"] == "all"),
        "{listed}"
    );
    // Calls count only against counted work, never a messaging activity.
    let out = aviso(&["calls", "import", &file, "--activity", "SMS-REG"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("activity SMS-REG is for sms messages"));
}

#[test]
#[ignore = "needs smtp-sink: run ops/test"]
fn e_mails_refused_by_smtp_sink_put_their_citizens_on_the_work_list() {
    let sink = SmtpSink::start(&["-f", "rcpt", "-B", "550 5.1.1 User unknown"]);
    let mut ws = Workspace::new();
    ws.env(
        "AVISO_EMAIL_PROVIDER",
        &format!("smtp://127.0.0.1:{}?tls=none&pool=2", sink.port()),
    );
    let contacts = ws.write(
        "c.csv",
        "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma\n\
         R1,Rosa,Díaz,OAX,US,rosa@example.org,1,2135550101,es\n\
         R2,Raúl,Gómez,DGO,US,raul@example.org,,,en\n\
         R3,=HYPERLINK(\"x\"),Luna,TAM,US,,1,2135550103,es\n",
    );
    ws.ok(&["contacts", "import", &contacts, "--list", "l"]);
    ws.ok(&[
        "activity",
        "create",
        "--code",
        "MAIL",
        "--name",
        "Correos",
        "--channel",
        "email",
        "--programmed",
        "3",
    ]);
    let id = ws.json(&[
        "campaign",
        "create",
        "--activity",
        "MAIL",
        "--template",
        "registro_abierto",
        "--list",
        "l",
        "--json",
    ])["id"]
        .as_i64()
        .unwrap()
        .to_string();
    ws.ok(&["campaign", "start", &id]);
    ws.ok(&["worker", "--once"]);
    assert_eq!(
        ws.json(&["campaign", "status", &id, "--json"])["counts"]["failed"],
        2
    );
    let out = ws.run(&["calls", "export", "--campaign", &id]);
    assert!(out.status.success());
    let (_, rows) = rows_of(&String::from_utf8_lossy(&out.stdout));
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[2].as_str(), r[7].as_str()))
        .collect();
    // Raúl bounced but has no phone: counted, not listed. A name that would
    // run as a formula stays text.
    assert_eq!(
        got,
        [
            ("R1", "Rosa", "failed"),
            ("R3", "'=HYPERLINK(\"x\")", "no e-mail address")
        ]
    );
    assert!(
        rows[0][8].contains("550"),
        "the server's answer: {:?}",
        rows[0]
    );
    assert_eq!(rows[0][5], "(213) 555-0101");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("1 unreached citizens have no phone at all and are not on the list (DGO 1)"),
        "{said}"
    );
}
