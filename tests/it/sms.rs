//! SMS through a real Kannel with its fake SMS centre, delivery reports back
//! through `aviso serve`, and the other HTTP providers against local servers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::peers::{free_port, wait_for_port, Kannel, SmsCoding};
use crate::support::{
    assert_all_deferred, copy_templates, drain, eventually, http, sms_workspace, Background,
    Workspace,
};

const WAIT: Duration = Duration::from_secs(120);
/// The sendsms user of the test Kannel.
pub(crate) const KANNEL_USER: (&str, &str) = ("aviso", "secret");

/// `n` citizens with US mobile numbers in the fictional 555-01XX block, half in
/// Spanish, half in English.
fn phones_csv(n: usize) -> String {
    let areas = [
        "213", "310", "415", "646", "702", "305", "312", "512", "602", "720",
    ];
    assert!(n <= areas.len() * 100);
    let mut csv = String::from(
        "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma,modalidad\n",
    );
    for i in 0..n {
        let lang = if i % 2 == 0 { "es" } else { "en" };
        let area = areas[i / 100];
        csv.push_str(&format!(
            "S{i:05},Persona{i},Apellido,OAX,US,,1,{area}55501{:02},{lang},electronica\n",
            i % 100
        ));
    }
    csv
}

/// A workspace sending SMS through `kannel`, with `aviso serve` running for
/// its delivery reports, and templates that keep accents (UCS-2).
pub(crate) struct SmsSetup {
    pub(crate) ws: Workspace,
    serve: Background,
    base: String,
}

pub(crate) fn setup(kannel: &Kannel, n: usize) -> SmsSetup {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut ws = sms_workspace(&kannel.provider_url(), KANNEL_USER, &phones_csv(n));
    ws.env("AVISO_PUBLIC_URL", &base);
    let templates = copy_templates(ws.path());
    // Keep every accent: the UCS-2 path must deliver them intact.
    let meta = templates.join("registro_abierto/meta.toml");
    let text = std::fs::read_to_string(&meta)
        .unwrap()
        .replace("transliterate = true", "transliterate = false")
        .replace("max_segments = 2", "max_segments = 3");
    std::fs::write(&meta, text).unwrap();
    ws.env("AVISO_TEMPLATES", &templates.display().to_string());
    ws.write(
        "aviso.toml",
        "[retry]\ninitial_seconds = 0.2\nmultiplier = 1.0\nmax_interval_seconds = 0.2\nmax_attempts = 50\n",
    );
    let serve = Background::spawn(ws.command(&["serve", "--listen", &format!("127.0.0.1:{port}")]));
    assert!(wait_for_port(port, WAIT), "aviso serve did not start");
    SmsSetup { ws, serve, base }
}

pub(crate) fn create_sms_campaign(ws: &Workspace) -> i64 {
    let created = ws.json(&[
        "campaign",
        "create",
        "--activity",
        "SMS",
        "--template",
        "registro_abierto",
        "--list",
        "moviles",
        "--json",
    ]);
    created["id"].as_i64().unwrap()
}

pub(crate) fn counts(ws: &Workspace, id: i64) -> Value {
    ws.json(&["campaign", "status", &id.to_string(), "--json"])["counts"].clone()
}

#[test]
#[ignore = "needs Kannel: run ops/test"]
fn five_hundred_sms_reach_the_smsc_intact_and_come_back_delivered() {
    let kannel = Kannel::start();
    let s = setup(&kannel, 500);
    let id = create_sms_campaign(&s.ws);
    s.ws.ok(&["campaign", "start", &id.to_string()]);
    let report = s.ws.json(&["worker", "--once", "--json"]);
    assert_eq!(report["sent"], 500, "{report}");
    assert_eq!(kannel.wait_for_received(500, WAIT), 500);

    let received = kannel.received();
    assert_eq!(received.len(), 500, "exactly one SMS per recipient");
    let mut by_number: HashMap<String, usize> = HashMap::new();
    for sms in &received {
        *by_number.entry(sms.to.clone()).or_default() += 1;
        assert_eq!(sms.from, "INE");
    }
    assert_eq!(by_number.len(), 500);
    // Spanish keeps its accents in UCS-2; English is plain GSM-7.
    let spanish = received
        .iter()
        .find(|m| m.to == "+12135550100")
        .expect("first contact");
    assert_eq!(spanish.coding, SmsCoding::Ucs2);
    assert!(spanish.text.contains("Regístrate"), "{}", spanish.text);
    let english = received
        .iter()
        .find(|m| m.to == "+12135550101")
        .expect("second contact");
    assert_eq!(english.coding, SmsCoding::Gsm);
    assert!(
        english.text.starts_with("INE: Vote from abroad"),
        "{}",
        english.text
    );
    // What the handset got is exactly what the template renders for that contact.
    let preview = s.ws.ok(&[
        "templates",
        "preview",
        "registro_abierto",
        "--channel",
        "sms",
        "--lang",
        "es",
        "--contact",
        "S00000",
    ]);
    assert!(
        preview.trim_end().ends_with(spanish.text.trim_end()),
        "{preview}\n---\n{}",
        spanish.text
    );

    // Kannel reports delivery through aviso serve.
    assert!(
        eventually(WAIT, || counts(&s.ws, id)["delivered"] == 500),
        "delivery reports did not arrive: {}",
        counts(&s.ws, id)
    );
    s.serve.stop();
}

#[test]
#[ignore = "needs Kannel: run ops/test"]
fn kannel_down_for_a_while_loses_nothing_and_duplicates_nothing() {
    let mut kannel = Kannel::start();
    let s = setup(&kannel, 60);
    let id = create_sms_campaign(&s.ws);
    s.ws.ok(&["campaign", "start", &id.to_string()]);
    kannel.stop_sms_path();
    let down = s.ws.json(&["worker", "--once", "--json"]);
    assert_all_deferred(&down, 60, "connection refused is temporary");
    kannel.start_sms_path();
    drain(&s.ws, id);
    assert_eq!(kannel.wait_for_received(60, WAIT), 60);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(kannel.received().len(), 60, "no duplicates");
    assert_eq!(counts(&s.ws, id)["failed"], 0);
}

/// The installation's receipt token for a message, as a gateway would get it.
fn receipt_token(ws: &Workspace, message_id: i64) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = aviso::store::open(&ws.database_url).await.unwrap();
        let tokens = aviso::tokens::Tokens::from_store(store.as_ref())
            .await
            .unwrap();
        tokens.token(aviso::tokens::Purpose::Receipt, message_id)
    })
}

#[test]
#[ignore = "needs Kannel: run ops/test"]
fn forged_unknown_and_replayed_reports_are_refused_and_a_valid_one_applies_once() {
    let kannel = Kannel::start();
    let s = setup(&kannel, 3);
    // Reports come from our serve only: stop Kannel's own reports racing ours.
    let id = create_sms_campaign(&s.ws);
    s.ws.ok(&["campaign", "start", &id.to_string()]);
    drop(kannel);
    s.ws.ok(&["worker", "--once"]);
    assert_eq!(counts(&s.ws, id)["retrying"], 3);

    let token = receipt_token(&s.ws, 1);
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = http(
        "GET",
        &format!("{}/receipts/sms/{forged}?type=1", s.base),
        &[],
        b"",
    );
    assert_eq!(status, 401, "bad signature");
    let unknown = receipt_token(&s.ws, 999_999);
    let (status, _) = http(
        "GET",
        &format!("{}/receipts/sms/{unknown}?type=1", s.base),
        &[],
        b"",
    );
    assert_eq!(status, 404, "unknown message");
    let other_purpose = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = aviso::store::open(&s.ws.database_url).await.unwrap();
            let tokens = aviso::tokens::Tokens::from_store(store.as_ref())
                .await
                .unwrap();
            tokens.token(aviso::tokens::Purpose::Unsubscribe, 1)
        })
    };
    let (status, _) = http(
        "GET",
        &format!("{}/receipts/sms/{other_purpose}?type=1", s.base),
        &[],
        b"",
    );
    assert_eq!(status, 401, "an unsubscribe token is not a receipt token");
    assert_eq!(counts(&s.ws, id)["delivered"], 0, "nothing changed");

    // Message 1 was never accepted by a gateway: a report about it changes nothing,
    // and the same report again is a replay.
    let (status, _) = http(
        "GET",
        &format!("{}/receipts/sms/{token}?type=1&reply=", s.base),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _) = http(
        "GET",
        &format!("{}/receipts/sms/{token}?type=1&reply=", s.base),
        &[],
        b"",
    );
    assert_eq!(status, 409, "a replay is refused");
    assert_eq!(
        counts(&s.ws, id)["delivered"],
        0,
        "not delivered before it was sent"
    );
}

#[test]
#[ignore = "needs Kannel: run ops/test"]
fn a_valid_report_applies_once_and_a_late_accepted_does_not_undo_delivered() {
    let kannel = Kannel::start();
    let s = setup(&kannel, 2);
    let id = create_sms_campaign(&s.ws);
    s.ws.ok(&["campaign", "start", &id.to_string()]);
    s.ws.ok(&["worker", "--once"]);
    assert!(
        eventually(WAIT, || counts(&s.ws, id)["delivered"] == 2),
        "{}",
        counts(&s.ws, id)
    );
    // Kannel already sent types 8 and 1; a late or repeated one changes nothing.
    let token = receipt_token(&s.ws, 1);
    let (status, _) = http(
        "GET",
        &format!("{}/receipts/sms/{token}?type=1", s.base),
        &[],
        b"",
    );
    assert_eq!(status, 409);
    let (status, _) = http(
        "GET",
        &format!("{}/receipts/sms/{token}?type=2&reply=late", s.base),
        &[],
        b"",
    );
    assert_eq!(status, 200, "a new report type is accepted");
    assert_eq!(
        counts(&s.ws, id)["delivered"],
        2,
        "a failure report never undoes a delivery"
    );
}

/// A tiny stand-in for an HTTP SMS provider: answers each request with the
/// next scripted (status, headers, body), and keeps what it received.
struct FakeProvider {
    port: u16,
    received: Received,
    _runtime: tokio::runtime::Runtime,
}

/// (status, extra headers, body) of one scripted answer.
type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);
type Script = Vec<Answer>;
/// Each request's headers, body and query string.
type Received = Arc<Mutex<Vec<Request>>>;

#[derive(Clone, Debug)]
struct Request {
    headers: HashMap<String, String>,
    body: String,
    query: HashMap<String, String>,
}

impl FakeProvider {
    fn start(script: Script) -> FakeProvider {
        use axum::extract::State;
        use axum::http::HeaderMap;
        use axum::response::IntoResponse;

        #[derive(Clone)]
        struct App {
            script: Arc<Mutex<std::collections::VecDeque<Answer>>>,
            received: Received,
        }
        async fn handle(
            State(app): State<App>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: String,
        ) -> axum::response::Response {
            let headers: HashMap<String, String> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
            app.received.lock().unwrap().push(Request {
                headers,
                body,
                query,
            });
            let (status, extra, reply) = app.script.lock().unwrap().pop_front().unwrap_or((
                200,
                vec![],
                r#"{"sid":"SMdefault","id":"default"}"#,
            ));
            let mut response = (
                axum::http::StatusCode::from_u16(status).unwrap(),
                reply.to_string(),
            )
                .into_response();
            for (k, v) in extra {
                response.headers_mut().insert(k, v.parse().unwrap());
            }
            response
        }
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = App {
            script: Arc::new(Mutex::new(script.into())),
            received: received.clone(),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = axum::Router::new().fallback(handle).with_state(app);
        runtime.spawn(async move { axum::serve(listener, router).await });
        FakeProvider {
            port,
            received,
            _runtime: runtime,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.received.lock().unwrap().clone()
    }
}

fn http_provider_workspace(provider_url: &str) -> (Workspace, i64) {
    let ws = sms_workspace(provider_url, ("AC123", "token-secret"), &phones_csv(1));
    ws.write(
        "aviso.toml",
        "[retry]\ninitial_seconds = 0.1\nmultiplier = 1.0\nmax_interval_seconds = 0.1\nmax_attempts = 50\n",
    );
    let id = create_sms_campaign(&ws);
    ws.ok(&["campaign", "start", &id.to_string()]);
    (ws, id)
}

#[test]
fn twilio_style_success_permanent_throttle_and_server_error() {
    // 429 with Retry-After, then 500, then success: retried, then sent.
    let provider = FakeProvider::start(vec![
        (
            429,
            vec![("Retry-After", "1")],
            r#"{"code":20429,"message":"Too Many Requests"}"#,
        ),
        (500, vec![], "oops"),
        (201, vec![], r#"{"sid":"SM42","status":"queued"}"#),
    ]);
    let (ws, id) = http_provider_workspace(&format!(
        "twilio+http://127.0.0.1:{}?from=%2B15550000000",
        provider.port
    ));
    let first = ws.json(&["worker", "--once", "--json"]);
    // A slow run may already have retried it (and met the 500).
    assert!(
        first["retrying"].as_i64() >= Some(1) && first["failed"] == 0,
        "429 is temporary: {first}"
    );
    drain(&ws, id);
    let c = counts(&ws, id);
    assert_eq!(c["sent"], 1, "{c}");
    let requests = provider.requests();
    assert_eq!(requests.len(), 3);
    let Request { headers, body, .. } = &requests[0];
    assert!(headers["authorization"].starts_with("Basic "), "basic auth");
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["To"], "+12135550100");
    assert_eq!(form["From"], "+15550000000");
    assert!(form["Body"].starts_with("INE:"));
    assert!(form["StatusCallback"].contains("/receipts/sms/"));

    // 400 with an invalid-number code: failed at once, and the number suppressed.
    let provider = FakeProvider::start(vec![(
        400,
        vec![],
        r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#,
    )]);
    let (ws, id) = http_provider_workspace(&format!(
        "twilio+http://127.0.0.1:{}?from=INE",
        provider.port
    ));
    let report = ws.json(&["worker", "--once", "--json"]);
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(counts(&ws, id)["failed"], 1);
    let suppressed = ws.json(&["suppress", "list", "--json"]);
    assert_eq!(suppressed[0]["address"], "+12135550100");
    assert_eq!(suppressed[0]["reason"], "invalid");
}

#[test]
fn kannel_is_given_a_signed_report_url_only_when_it_reports() {
    let accepted: Answer = (202, vec![], "0: Accepted for delivery");
    let provider = FakeProvider::start(vec![accepted.clone(), accepted]);
    for settings in ["", "&dlr=false"] {
        let url = format!("kannel://127.0.0.1:{}?from=INE{settings}", provider.port);
        let (ws, id) = http_provider_workspace(&url);
        let report = ws.json(&["worker", "--once", "--json"]);
        assert_eq!(report["sent"], 1, "{url}: {report}");
        assert_eq!(counts(&ws, id)["sent"], 1);
    }
    let requests = provider.requests();
    assert_eq!(requests.len(), 2, "one request per worker run");
    let with_reports = &requests[0].query;
    assert_eq!(with_reports["dlr-mask"], "31");
    assert!(
        with_reports["dlr-url"].contains("/receipts/sms/"),
        "{with_reports:?}"
    );
    let without = &requests[1].query;
    assert_eq!(without["to"], "+12135550100");
    assert!(
        !without.contains_key("dlr-url") && !without.contains_key("dlr-mask"),
        "dlr=false asks for no reports: {without:?}"
    );
}

#[test]
fn json_webhook_is_signed_and_classified() {
    let provider = FakeProvider::start(vec![
        (503, vec![], "maintenance"),
        (429, vec![("Retry-After", "1")], ""),
        (202, vec![], r#"{"id":"abc"}"#),
    ]);
    let (ws, id) =
        http_provider_workspace(&format!("webhook+http://127.0.0.1:{}/send", provider.port));
    drain(&ws, id);
    assert_eq!(counts(&ws, id)["sent"], 1);
    let requests = provider.requests();
    assert_eq!(requests.len(), 3, "503 and 429 were retried");
    let Request { headers, body, .. } = &requests[2];
    let expected = aviso::channels::webhook_signature("token-secret", body.as_bytes());
    assert_eq!(
        headers["x-aviso-signature"], expected,
        "HMAC-SHA256 of the body"
    );
    let json: Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["to"], "+12135550100");
    assert_eq!(json["encoding"], "GSM-7");
    assert_eq!(json["segments"], 1);
    assert!(json["reference"].as_str().unwrap().starts_with('m'));

    // A redirect is not followed: the gateway's URL is wrong, the message waits.
    let provider = FakeProvider::start(vec![
        (302, vec![("Location", "/elsewhere")], ""),
        (202, vec![], r#"{"id":"abc"}"#),
    ]);
    let (ws, id) =
        http_provider_workspace(&format!("webhook+http://127.0.0.1:{}/send", provider.port));
    let report = ws.json(&["worker", "--once", "--json"]);
    // Retries come due after 0.1 s here, so a slow run may already have sent it.
    assert!(
        report["retrying"].as_i64() >= Some(1) && report["failed"] == 0,
        "302 is retried: {report}"
    );
    drain(&ws, id);
    assert_eq!(counts(&ws, id)["sent"], 1);
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    // Following the redirect would have sent a GET, without the message.
    assert!(
        requests.iter().all(|r| r.body.contains("+12135550100")),
        "302 is not followed: {requests:?}"
    );

    let provider = FakeProvider::start(vec![(400, vec![], "bad request")]);
    let (ws, id) =
        http_provider_workspace(&format!("webhook+http://127.0.0.1:{}/send", provider.port));
    let report = ws.json(&["worker", "--once", "--json"]);
    assert_eq!(report["failed"], 1, "400 is permanent: {report}");
    assert_eq!(counts(&ws, id)["failed"], 1);
}

#[test]
fn an_sms_over_max_segments_for_any_one_contact_is_refused_before_anything_is_queued() {
    let mut ws = Workspace::new();
    let templates = copy_templates(ws.path());
    // One branch of the text is far longer than the other.
    std::fs::write(
        templates.join("registro_abierto/sms.es.hbs"),
        "INE: {{#if (eq contact.modality \"postal\")}}{{programme.list_es}}, {{programme.list_es}}, {{programme.list_es}}, {{programme.list_es}}, {{programme.list_es}}, {{programme.list_es}}, {{programme.list_es}}{{else}}Registrate en {{programme.site}}{{/if}}",
    )
    .unwrap();
    let outbox = format!("file://{}", ws.path().join("out").display());
    ws.env("AVISO_TEMPLATES", &templates.display().to_string())
        .env("AVISO_SMS_PROVIDER", &outbox);
    // 300 contacts with long names (the ones a sample would pick), all
    // electronic; the one postal voter has the shortest name.
    let mut csv =
        String::from("id_contacto,nombre,apellidos,entidad,pais,lada,telefono,modalidad\n");
    for i in 0..300 {
        csv.push_str(&format!(
            "N{i:04},Nombre Muy Largo De Persona,Apellidos Larguísimos De Prueba,OAX,US,1,2135550{:03},electronica\n",
            100 + i % 100
        ));
    }
    csv.push_str("Z9999,Al,Li,OAX,US,1,3105550123,postal\n");
    let file = ws.write("c.csv", csv);
    ws.ok(&["contacts", "import", &file, "--list", "l"]);
    ws.ok(&[
        "activity",
        "create",
        "--code",
        "S",
        "--name",
        "SMS",
        "--channel",
        "sms",
        "--programmed",
        "1",
    ]);
    let err = ws.fails(
        &[
            "campaign",
            "create",
            "--activity",
            "S",
            "--template",
            "registro_abierto",
            "--list",
            "l",
        ],
        1,
    );
    assert!(
        err.contains("Z9999") && err.contains("max_segments"),
        "{err}"
    );
    assert_eq!(
        ws.json(&["campaign", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing created"
    );
}
