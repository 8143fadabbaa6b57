//! Citizens' SMS replies through a real Kannel: fakesmsc plays the handset,
//! Kannel's `sms-service` hands the SMS to `aviso serve`, and the confirmation
//! goes back through Kannel's `sendsms` to fakesmsc.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use aviso::channels::Channel;
use aviso::domain::SuppressionReason;
use aviso::receipts::{router, Receipts};
use aviso::replies::{InboundRecord, Replier, ReplyAction, ReplyStatus};
use aviso::tokens::Tokens;

use crate::sms::{counts, create_sms_campaign, KANNEL_USER};
use crate::support::engine::{ms, Setup};
use crate::support::peers::{free_port, wait_for_port, Kannel};
use crate::support::{eventually, http, sms_workspace, Background, Workspace};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "s3cret";

/// Spanish, English, then two numbers the call centre and a failed send stopped.
const ANA: &str = "+12135550100";
const BOB: &str = "+12135550101";
const CALLED: &str = "+12135550102";
const INVALID: &str = "+12135550103";

const CONTACTS: &str = "\
id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma
R1,Ana,Pérez,OAX,US,,1,2135550100,es
R2,Bob,Smith,OAX,US,,1,2135550101,en
R3,Carla,Ruiz,OAX,US,,1,2135550102,es
R4,Dora,Gil,OAX,US,,1,2135550103,es
";

struct Replies {
    ws: Workspace,
    kannel: Kannel,
    base: String,
    _serve: Background,
}

impl Replies {
    fn start() -> Replies {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let kannel = Kannel::start_with_inbound(Some(&format!(
            "http://kannel:{SECRET}@127.0.0.1:{port}/inbound/kannel?from=%p&text=%a&coding=%c"
        )));
        let mut ws = sms_workspace(&kannel.provider_url(), KANNEL_USER, CONTACTS);
        ws.env("AVISO_PUBLIC_URL", &base)
            .env("AVISO_RECEIPTS_SECRET", SECRET);
        let serve =
            Background::spawn(ws.command(&["serve", "--listen", &format!("127.0.0.1:{port}")]));
        assert!(wait_for_port(port, WAIT), "aviso serve did not start");
        Replies {
            ws,
            kannel,
            base,
            _serve: serve,
        }
    }

    fn inbound(&self) -> Vec<InboundRecord> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = aviso::store::open(&self.ws.database_url).await.unwrap();
            store.inbound_log(0, 100).await.unwrap()
        })
    }

    /// fakesmsc sends `text` from `from`; returns once aviso has recorded it.
    fn handset_sends(&mut self, from: &str, text: &str) -> InboundRecord {
        let before = self.inbound().len();
        self.kannel.send_mo(from, text);
        assert!(
            eventually(WAIT, || self.inbound().len() > before),
            "aviso never recorded {text:?} from {from}"
        );
        let record = self.inbound().pop().unwrap();
        assert_eq!(record.phone.as_str(), from);
        assert_eq!(record.text, text);
        record
    }

    /// SMS fakesmsc received for `to`, in order.
    fn texts_to(&self, to: &str) -> Vec<String> {
        let received = self.kannel.received();
        received
            .into_iter()
            .filter(|sms| sms.to == to)
            .map(|sms| sms.text)
            .collect()
    }

    fn wait_texts_to(&self, to: &str, n: usize) -> Vec<String> {
        eventually(WAIT, || self.texts_to(to).len() >= n);
        self.texts_to(to)
    }

    fn suppressions(&self) -> Value {
        self.ws.json(&["suppress", "list", "--json"])
    }

    /// A campaign of `registro_abierto` to every contact, sent; its counts.
    fn campaign(&self) -> Value {
        let id = create_sms_campaign(&self.ws);
        self.ws.ok(&["campaign", "start", &id.to_string()]);
        self.ws.ok(&["worker", "--once"]);
        counts(&self.ws, id)
    }
}

/// Messages a provider took: sent, or already reported delivered.
fn reached(counts: &Value) -> i64 {
    counts["sent"].as_i64().unwrap() + counts["delivered"].as_i64().unwrap()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[test]
#[ignore = "needs Kannel: run ops/test"]
fn baja_and_alta_through_kannel_change_who_the_next_campaign_reaches() {
    let mut r = Replies::start();
    // One number stopped by the call centre (every channel), one by a failed send.
    let calls = r.ws.write(
        "llamadas.csv",
        format!("telefono,resultado\n{CALLED},Solicitó no se le vuelva a llamar\n"),
    );
    r.ws.ok(&["suppress", "import-calls", &calls]);
    r.ws.ok(&[
        "suppress",
        "add",
        INVALID,
        "--channel",
        "sms",
        "--reason",
        "invalid",
    ]);
    let before = r.suppressions();

    // Forged inbound: wrong or no credentials, on both doors. Nothing changes.
    let kannel_door = format!("{}/inbound/kannel?from=%2B12135550100&text=baja", r.base);
    let webhook_door = format!("{}/inbound/sms", r.base);
    let body = format!(r#"{{"from": "{ANA}", "text": "BAJA"}}"#);
    let wrong = basic("kannel", "guess");
    for (method, url, headers, body) in [
        ("GET", &kannel_door, vec![], &b""[..]),
        (
            "GET",
            &kannel_door,
            vec![("Authorization", wrong.as_str())],
            &b""[..],
        ),
        ("POST", &webhook_door, vec![], body.as_bytes()),
        (
            "POST",
            &webhook_door,
            vec![("Authorization", "Bearer guess")],
            body.as_bytes(),
        ),
    ] {
        let (status, _) = http(method, url, &headers, body);
        assert_eq!(status, 401, "{method} {url} {headers:?}");
    }
    assert_eq!(
        r.suppressions(),
        before,
        "a forged SMS changed the suppressions"
    );
    assert!(r.inbound().is_empty(), "a forged SMS was recorded");

    // Ana answers "baja": suppressed on SMS, confirmed in Spanish.
    let baja = r.handset_sends(ANA, "baja");
    assert_eq!(baja.action, ReplyAction::Suppressed);
    let texts = r.wait_texts_to(ANA, 1);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("ya no recibiras SMS"), "{}", texts[0]);
    assert!(r.inbound().last().unwrap().reply == ReplyStatus::Sent);

    // The next campaign skips her, and the two others stopped before.
    let counts = r.campaign();
    assert_eq!(reached(&counts), 1, "{counts}");
    assert_eq!(counts["suppressed"], 3, "{counts}");
    assert_eq!(r.wait_texts_to(BOB, 1).len(), 1);
    assert_eq!(
        r.texts_to(ANA).len(),
        1,
        "only the confirmation reached Ana"
    );

    // Bob writes STOP through the JSON webhook: confirmed in English.
    let (status, answer) = http(
        "POST",
        &webhook_door,
        &[
            ("Authorization", &format!("Bearer {SECRET}")),
            ("Content-Type", "application/json"),
        ],
        format!(r#"{{"from": "{BOB}", "text": "Stop, please"}}"#).as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["keyword"], "opt_out", "{answer}");
    assert_eq!(answer["action"], "suppressed", "{answer}");
    assert_eq!(answer["reply"], "sent", "{answer}");
    let texts = r.wait_texts_to(BOB, 2);
    assert!(texts[1].contains("no more SMS"), "{texts:?}");

    // BAJA then ALTA from numbers others stopped: they stay stopped, and
    // ALTA gets no reply, since nothing may be sent to them.
    for number in [CALLED, INVALID] {
        r.handset_sends(number, "BAJA");
        assert_eq!(r.wait_texts_to(number, 1).len(), 1);
        let alta = r.handset_sends(number, "ALTA");
        assert_eq!(alta.action, ReplyAction::KeptSuppressed, "{number}");
        assert_eq!(alta.reply, ReplyStatus::NotSent, "{number}");
    }

    // Ana's ALTA lifts her own BAJA: confirmed, and the next campaign reaches her.
    let alta = r.handset_sends(ANA, "ALTA por favor");
    assert_eq!(alta.action, ReplyAction::Resubscribed);
    let texts = r.wait_texts_to(ANA, 2);
    assert!(texts[1].contains("volveras a recibir SMS"), "{texts:?}");
    let counts = r.campaign();
    assert_eq!(reached(&counts), 1, "{counts}");
    assert_eq!(counts["suppressed"], 3, "{counts}");
    let texts = r.wait_texts_to(ANA, 3);
    assert!(texts[2].starts_with("INE: "), "{texts:?}");

    // Neither ALTA reached the numbers that stay stopped, nor any campaign.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.texts_to(CALLED).len(), 1);
    assert_eq!(r.texts_to(INVALID).len(), 1);
    let kept: Vec<(String, String)> = r
        .suppressions()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["address"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        kept.contains(&(CALLED.into(), "do_not_contact".into())),
        "{kept:?}"
    );
    assert!(
        kept.contains(&(INVALID.into(), "invalid".into())),
        "{kept:?}"
    );
    assert!(!kept.iter().any(|(a, _)| a == ANA), "{kept:?}");

    // An accented BAJA arrives from the handset as UCS-2, and still counts.
    let accented = r.handset_sends(ANA, "¡BÁJA, por favor!");
    assert_eq!(accented.action, ReplyAction::Suppressed);

    // Malformed inbound with the right secret is refused, and not recorded.
    let bearer = format!("Bearer {SECRET}");
    let before = r.inbound().len();
    for body in [
        &b"baja"[..],
        br#"{"text": "baja"}"#,
        br#"{"from": "12", "text": "baja"}"#,
    ] {
        let (status, answer) = http("POST", &webhook_door, &[("Authorization", &bearer)], body);
        assert_eq!(status, 400, "{answer}");
    }
    assert_eq!(r.inbound().len(), before);
}

/// `aviso serve`'s router in process, confirming replies through `sms`, with
/// `secret` as the receipts secret.
async fn serve_in_process(
    s: &Setup,
    secret: Option<&str>,
    sms: Option<Arc<dyn Channel>>,
) -> String {
    let app = router(Receipts {
        store: s.store.clone(),
        tokens: Tokens::from_store(s.store.as_ref()).await.unwrap(),
        clock: s.clock.clone(),
        bounce_secret: secret.map(str::to_string),
        replies: Some(Arc::new(Replier {
            store: s.store.clone(),
            clock: s.clock.clone(),
            renderer: Some(s.renderer.clone()),
            sms,
        })),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn without_a_provider_the_change_applies_and_the_missing_reply_is_recorded() {
    let s = Setup::new(ms("2022-01-10T12:00:00-06:00")).await;
    let base = serve_in_process(&s, Some(SECRET), None).await;
    let http = reqwest::Client::new();
    let post = |text: &str| {
        http.post(format!("{base}/inbound/sms"))
            .bearer_auth(SECRET)
            .json(&serde_json::json!({"from": "12135550199", "text": text}))
            .send()
    };
    let answer: Value = post("Baja por favor").await.unwrap().json().await.unwrap();
    assert_eq!(answer["action"], "suppressed", "{answer}");
    assert_eq!(answer["reply"], "no_provider", "{answer}");
    let answer: Value = post("¿Cuándo es la elección?")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["keyword"], "unknown", "{answer}");
    assert_eq!(answer["action"], "ignored", "{answer}");

    let log = s.store.inbound_log(0, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[0].phone.as_str(),
        "+12135550199",
        "digits without + are international"
    );
    assert_eq!(log[0].reply, ReplyStatus::NoProvider);
    assert_eq!(
        log[0].reply_detail.as_deref(),
        Some("no SMS provider is configured")
    );
    assert_eq!(log[1].reply, ReplyStatus::NotSent);
    let suppressed = s.store.suppressions(None).await.unwrap();
    assert_eq!(suppressed.len(), 1, "only the BAJA suppresses");
    assert_eq!(suppressed[0].reason, SuppressionReason::Reply);
}

#[tokio::test]
async fn without_a_secret_inbound_is_closed() {
    let s = Setup::new(ms("2022-01-10T12:00:00-06:00")).await;
    let base = serve_in_process(&s, None, None).await;
    let refused = reqwest::Client::new()
        .get(format!(
            "{base}/inbound/kannel?from=%2B12135550199&text=baja"
        ))
        .basic_auth("kannel", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(s.store.inbound_log(0, 10).await.unwrap().is_empty());
    assert!(s.store.suppressions(None).await.unwrap().is_empty());
}
