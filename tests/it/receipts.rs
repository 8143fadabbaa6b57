//! Bounces, complaints and one-click unsubscribes through `aviso serve`'s
//! router, end to end: the next run of the same campaign skips those people.

use aviso::campaigns::manage::CampaignRequest;
use aviso::campaigns::CampaignSchedule;
use aviso::domain::ChannelKind;
use aviso::receipts::{router, Receipts};
use aviso::schedule::Monthly;
use aviso::tokens::{Purpose, Tokens};

use crate::support::engine::{ms, Setup};

fn citizens(n: usize) -> String {
    let mut csv = String::from("id_contacto,nombre,apellidos,entidad,pais,email,idioma\n");
    for i in 0..n {
        csv.push_str(&format!(
            "R{i},Nombre{i},Apellido,DGO,US,r{i}@example.org,es\n"
        ));
    }
    csv
}

/// A DSN as Postfix writes it for a mailbox that does not exist.
fn dsn(message_id: &str, recipient: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.org\r\n\
         To: avisos@votoextranjero.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         Your message could not be delivered.\r\n\
         --b1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.org\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Message-ID: {message_id}\r\n\
         To: {recipient}\r\n\
         --b1--\r\n"
    )
}

#[tokio::test]
async fn bounces_complaints_and_unsubscribes_keep_people_out_of_the_next_run() {
    let s = Setup::new(ms("2021-09-01T08:00:00-05:00")).await;
    s.email_activity().await;
    s.import("ciudadania", &citizens(6)).await;
    let id = s
        .campaign(CampaignRequest {
            activity: "ACT".into(),
            template: "registro_abierto".into(),
            channel: Some(ChannelKind::Email),
            list: "ciudadania".into(),
            attachment_limit: 1 << 20,
            schedule: CampaignSchedule {
                recurrence: Some(Monthly::new(1, "10:00").unwrap()),
                ..CampaignSchedule::default()
            },
            ..CampaignRequest::default()
        })
        .await;
    s.clock.set(ms("2021-09-01T10:05:00-05:00"));
    s.run_workers(1).await;
    let counts = s.store.status_counts(id).await.unwrap().messages;
    assert_eq!(counts.sent, 6);

    // aviso serve, in process, on a free loopback port.
    let tokens = Tokens::from_store(s.store.as_ref()).await.unwrap();
    let app = router(Receipts {
        store: s.store.clone(),
        tokens: tokens.clone(),
        clock: s.clock.clone(),
        bounce_secret: Some("s3cret".into()),
        replies: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    let url = format!("sqlite://{}", s.dir.path().join("aviso.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let messages: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT id, run_id, address FROM messages ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let (bounced, unsubscribed, complained) = (&messages[0], &messages[1], &messages[2]);

    // A hard bounce, as an RFC 3464 report; the wrong secret changes nothing.
    let report = dsn(
        &format!("<aviso.{}.{}@votoextranjero.example>", bounced.1, bounced.0),
        &bounced.2,
    );
    let refused = http
        .post(format!("{base}/bounces"))
        .bearer_auth("guess")
        .body(report.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let accepted = http
        .post(format!("{base}/bounces"))
        .bearer_auth("s3cret")
        .body(report.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let replay = http
        .post(format!("{base}/bounces"))
        .bearer_auth("s3cret")
        .body(report)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        409,
        "the same report twice is applied once"
    );

    // One-click unsubscribe (RFC 8058): a GET only shows the page.
    let token = tokens.token(Purpose::Unsubscribe, unsubscribed.0);
    let page = http
        .get(format!("{base}/unsubscribe/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let suppressed = s.store.suppressions(None).await.unwrap();
    assert!(
        suppressed.iter().all(|x| x.address != unsubscribed.2),
        "a GET never unsubscribes"
    );
    let click = http
        .post(format!("{base}/unsubscribe/{token}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(click.status(), 200);
    let forged = http
        .post(format!("{base}/unsubscribe/{}x", &token[..token.len() - 1]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // A complaint in the JSON form.
    let complaint = http
        .post(format!("{base}/bounces"))
        .bearer_auth("s3cret")
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"reference":"m{}","type":"complaint"}}"#,
            complained.0
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(complaint.status(), 200);

    let reasons: Vec<(String, String)> = s
        .store
        .suppressions(None)
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.address, x.reason.to_string()))
        .collect();
    assert!(
        reasons.contains(&(bounced.2.clone(), "hard_bounce".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(unsubscribed.2.clone(), "opt_out".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(complained.2.clone(), "complaint".into())),
        "{reasons:?}"
    );
    let counts = s.store.status_counts(id).await.unwrap().messages;
    assert_eq!(counts.failed, 1, "the bounced message is failed, not sent");

    // Next month's run leaves those three out.
    s.clock.set(ms("2021-10-01T10:05:00-05:00"));
    s.run_workers(1).await;
    let runs = s.store.runs(id).await.unwrap();
    assert_eq!(runs.len(), 2);
    let second: Vec<(String, String)> =
        sqlx::query_as("SELECT address, status FROM messages WHERE run_id = $1 ORDER BY id")
            .bind(runs[1].id)
            .fetch_all(&pool)
            .await
            .unwrap();
    for (address, status) in &second {
        let skipped = [&bounced.2, &unsubscribed.2, &complained.2].contains(&address);
        assert_eq!(
            status,
            if skipped { "suppressed" } else { "sent" },
            "{address}"
        );
    }

    // /metrics and /healthz answer.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aviso_messages{channel=\"email\",status=\"suppressed\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aviso_send_latency_seconds_count"),
        "{metrics}"
    );
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
