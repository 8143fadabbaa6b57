//! The hand-written part of the SMTP channel (MAIL, RCPT and DATA pipelined in
//! one write, DATA dot-stuffed by hand: see src/channels/smtp.rs) proven
//! against a complete Postfix, whose `smtpd` takes the messages and whose
//! `virtual` agent stores them in a Maildir: what a recipient's mailbox holds
//! is compared with what aviso rendered.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aviso::channels::{open_provider, Channel, EmailOut, Outgoing, ProviderContext};
use aviso::domain::{ChannelKind, EmailAddress};
use aviso::templates::{build_email, EmailHeaders, RenderedEmail};
use mailparse::{MailHeaderMap, ParsedMail};
use serde_json::Value;

use crate::dispatch::{assert_adds_up, email_campaign, status, workspace_on};
use crate::support::drain;
use crate::support::postfix::{as_sent, Postfix};
use crate::support::Workspace;

const WAIT: Duration = Duration::from_secs(120);

/// Bodies that a mistake in dot-stuffing, line handling or transfer encoding
/// would change: (name, text part, HTML part).
fn edge_cases() -> Vec<(&'static str, String, String)> {
    let dots = ".\n..\n...\n.leading dot\n..two leading dots\nmiddle . dot\n.\r\n. \n.";
    let long_ascii = "a".repeat(998);
    let long_dot = format!(".{}", "b".repeat(997));
    let long_utf8 = "é".repeat(499);
    vec![
        ("dots", dots.to_string(), format!("<p>\n{dots}\n</p>\n")),
        (
            "998 octets",
            format!("{long_ascii}\n{long_dot}\n{long_utf8}\n"),
            format!("{long_dot}\n{long_ascii}"),
        ),
        (
            "utf-8",
            "Votación en el extranjero: ¿ya te registraste? ñ Ñ ü € 🗳️\nAdiós.\n".into(),
            "<p>Instituto Nacional Electoral · Voto desde el extranjero</p>\n<p>¡Regístrate!</p>"
                .into(),
        ),
        (
            "line ends",
            "uno\r\ndos\n\ntres\r\n\r\n\n".into(),
            "sin salto final\r\n\r\n.\r\nfin".into(),
        ),
    ]
}

/// A message as a campaign would build it, for `to`, 8-bit when the channel
/// last said it takes 8-bit.
fn message(channel: &dyn Channel, case: usize, text: &str, html: &str) -> (String, Outgoing) {
    let from = "Voto <avisos@votoextranjero.example>".parse().unwrap();
    let to = EmailAddress::parse(&format!("case{case}@example.org")).unwrap();
    let message_id = format!("<proof.{case}@votoextranjero.example>");
    let rendered = RenderedEmail {
        subject: format!("Caso {case}"),
        text: text.into(),
        html: html.into(),
        language: "es".into(),
        fell_back: false,
    };
    let headers = EmailHeaders {
        from: &from,
        to: &to,
        to_name: Some("Persona Prueba"),
        message_id: &message_id,
        unsubscribe_url: Some("http://127.0.0.1:8025/unsubscribe/t"),
        eight_bit: channel.takes_8bit(),
    };
    let built = build_email(&rendered, &headers, &[]).unwrap();
    let out = Outgoing::Email(EmailOut {
        reference: format!("m{case}"),
        envelope: built.envelope().clone(),
        raw: built.formatted(),
    });
    (message_id, out)
}

/// CRLF made LF, as Postfix stores a message; byte by byte, so nothing else
/// is changed on the way to a comparison.
fn lf(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for (i, &b) in s.iter().enumerate() {
        if !(b == b'\r' && s.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

fn header(mail: &ParsedMail<'_>, name: &str) -> String {
    mail.headers
        .get_first_value(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Message-ID → delivered copies.
fn by_message_id(postfix: &Postfix) -> HashMap<String, Vec<Vec<u8>>> {
    let mut ids: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for stored in postfix.messages() {
        let mail = mailparse::parse_mail(&stored).expect("a MIME message");
        ids.entry(header(&mail, "Message-ID"))
            .or_default()
            .push(stored);
    }
    ids
}

/// Sends every edge case through aviso's SMTP channel to Postfix and compares
/// the mailbox with what was built: the whole message byte for byte (Postfix
/// stores LF line ends and puts its trace headers first), and each decoded
/// part with the rendered text.
async fn edge_cases_arrive_byte_for_byte(settings: &[(&str, &str)], takes_8bit: bool) {
    let postfix = Postfix::start(settings);
    let url = format!("smtp://127.0.0.1:{}?tls=none&pool=1", postfix.port());
    let channel = open_provider(&url, ChannelKind::Email, &ProviderContext::default()).unwrap();
    // The first message is built before the channel knows what the server
    // takes; sent first, it lets every edge case be built as it would be.
    let (warm_up_id, warm_up) = message(channel.as_ref(), 0, "hola", "<p>hola</p>");
    channel.send(&warm_up).await.unwrap();
    assert_eq!(channel.takes_8bit(), takes_8bit, "what Postfix announced");

    let cases = edge_cases();
    let mut sent = vec![(
        warm_up_id,
        warm_up,
        "hola".to_string(),
        "<p>hola</p>".into(),
    )];
    for (i, (name, text, html)) in cases.iter().enumerate() {
        let (id, out) = message(channel.as_ref(), i + 1, text, html);
        channel
            .send(&out)
            .await
            .unwrap_or_else(|e| panic!("case {name:?} refused: {e}"));
        sent.push((id, out, text.clone(), html.clone()));
    }
    assert_eq!(postfix.wait_for_count(sent.len(), WAIT), sent.len());

    let delivered = by_message_id(&postfix);
    let mut encodings = HashSet::new();
    for (id, out, text, html) in &sent {
        let Outgoing::Email(email) = out else {
            unreachable!("built as e-mail")
        };
        let copies = delivered
            .get(id)
            .unwrap_or_else(|| panic!("{id} not delivered"));
        assert_eq!(copies.len(), 1, "{id} delivered once");
        let stored = &copies[0];
        assert!(
            as_sent(stored) == lf(&email.raw).as_slice(),
            "{id} changed on the way:\n--- built\n{}\n--- stored\n{}",
            String::from_utf8_lossy(&email.raw),
            String::from_utf8_lossy(stored)
        );
        if !takes_8bit {
            assert!(
                stored.is_ascii(),
                "{id}: 8-bit to a server without 8BITMIME"
            );
        }

        let mail = mailparse::parse_mail(stored).unwrap();
        let parts = &mail.subparts;
        assert_eq!(parts.len(), 2, "{id}: text and HTML");
        for (part, rendered) in parts.iter().zip([text, html]) {
            let encoding = header(part, "Content-Transfer-Encoding");
            if takes_8bit {
                // 998 octets is the limit for 8bit, and allowed.
                let expected = if rendered.is_ascii() { "7bit" } else { "8bit" };
                assert_eq!(encoding, expected, "{id}: {rendered:?}");
            } else {
                // lettre's choice: 7bit when it can, else the shorter of
                // quoted-printable and base64.
                assert_ne!(encoding, "8bit", "{id}: {rendered:?}");
            }
            encodings.insert(encoding);
            let body = part.get_body().unwrap();
            assert_eq!(
                lf(body.as_bytes()),
                lf(rendered.as_bytes()),
                "{id}: the {} part the recipient reads",
                part.ctype.mimetype
            );
        }
    }
    if !takes_8bit {
        assert!(encodings.contains("quoted-printable"), "{encodings:?}");
    }
    assert!(!postfix.log().contains("improper command pipelining"));
}

#[tokio::test]
#[ignore = "needs Postfix smtpd: run ops/test"]
async fn edge_case_bodies_arrive_byte_for_byte_8bit() {
    edge_cases_arrive_byte_for_byte(&[], true).await;
}

/// Postfix without 8BITMIME: the same bodies go quoted-printable.
#[tokio::test]
#[ignore = "needs Postfix smtpd: run ops/test"]
async fn edge_case_bodies_arrive_byte_for_byte_quoted_printable() {
    edge_cases_arrive_byte_for_byte(&[("smtpd_discard_ehlo_keywords", "8bitmime")], false).await;
}

/// Postfix answers one RCPT with 451 while the other messages of the batch
/// go through on the same pooled connections. The refused one is retried
/// (the `554 no valid recipients` that answers its pipelined DATA must not
/// make it permanent) and, once the rule is gone, delivered exactly once.
#[test]
#[ignore = "needs Postfix smtpd: run ops/test"]
fn a_4xx_in_the_middle_of_a_pipeline_is_retried_and_delivered_once() {
    let deferring = [(
        "smtpd_recipient_restrictions",
        "check_recipient_access inline:{ { p7@example.org = 451 4.3.0 try later } }",
    )];
    let mut postfix = Postfix::start(&deferring);
    let ws = workspace_on(postfix.port(), "pool=8");
    let n = 40;
    let (id, first) = start_and_work(&ws, n);
    assert_eq!(first["sent"], n - 1, "{first}");
    assert_eq!(first["failed"], 0, "{first}");
    assert!(first["retrying"].as_i64() >= Some(1), "{first}");
    let s = status(&ws, id);
    assert_eq!(s["counts"]["retrying"], 1, "{s}");
    assert_adds_up(&s);
    assert_eq!(postfix.wait_for_count(n - 1, WAIT), n - 1);
    assert!(postfix
        .log()
        .contains("451 4.3.0 <p7@example.org>: Recipient address rejected: try later"));
    assert!(!recipients(&postfix).contains_key("p7@example.org"));

    postfix.restart(&[]);
    let s = drain(&ws, id);
    assert_eq!(s["counts"]["sent"], n, "{s}");
    assert_eq!(postfix.wait_for_count(n, WAIT), n);
    let copies = recipients(&postfix);
    assert_eq!(copies.len(), n, "{copies:?}");
    assert!(copies.values().all(|&c| c == 1), "{copies:?}");
    let ids = by_message_id(&postfix);
    assert_eq!(ids.len(), n);
    assert!(ids.values().all(|copies| copies.len() == 1));
}

/// An `n`-citizen e-mail campaign started and worked once (`worker --once`):
/// its id and the worker's report.
fn start_and_work(ws: &Workspace, n: usize) -> (i64, Value) {
    let id = email_campaign(ws, n);
    ws.ok(&["campaign", "start", &id.to_string()]);
    (id, ws.json(&["worker", "--once", "--json"]))
}

/// Delivered-To → copies delivered.
fn recipients(postfix: &Postfix) -> HashMap<String, usize> {
    let mut copies = HashMap::new();
    for stored in postfix.messages() {
        let mail = mailparse::parse_mail(&stored).unwrap();
        *copies.entry(header(&mail, "Delivered-To")).or_default() += 1;
    }
    copies
}

/// With one connection in the pool every message of a campaign goes over the
/// same SMTP session, one pipelined transaction after another: each arrives
/// once, addressed as its envelope said, and no Message-ID is missing.
#[test]
#[ignore = "needs Postfix smtpd: run ops/test"]
fn many_messages_over_one_connection_are_each_delivered_once() {
    let postfix = Postfix::start(&[]);
    let ws = workspace_on(postfix.port(), "pool=1");
    let n = 300;
    let (id, report) = start_and_work(&ws, n);
    assert_eq!(report["sent"], n, "{report}");
    assert_eq!(postfix.wait_for_count(n, WAIT), n);

    let mut message_numbers = Vec::new();
    let mut run = None;
    for stored in postfix.messages() {
        let mail = mailparse::parse_mail(&stored).unwrap();
        let to = header(&mail, "To");
        let delivered_to = header(&mail, "Delivered-To");
        assert!(
            to.contains(&format!("<{delivered_to}>")),
            "{to} / {delivered_to}"
        );
        // <aviso.{run}.{message}@{domain}>
        let message_id = header(&mail, "Message-ID");
        let mut fields = message_id
            .trim_matches(['<', '>'])
            .split(['.', '@'])
            .skip(1);
        let this_run = fields.next().unwrap().to_string();
        assert_eq!(run.get_or_insert(this_run.clone()), &this_run, "one run");
        message_numbers.push(fields.next().unwrap().parse::<i64>().unwrap());
    }
    message_numbers.sort_unstable();
    let first = message_numbers[0];
    assert_eq!(
        message_numbers,
        (first..first + n as i64).collect::<Vec<_>>(),
        "every message of the run, once"
    );
    assert_eq!(recipients(&postfix).len(), n);
    assert_eq!(status(&ws, id)["counts"]["sent"], n);

    // Postfix logs each session's start, and at its end what it carried.
    let ended = crate::support::eventually(WAIT, || {
        let log = postfix.log();
        log.matches(": disconnect from").count() >= log.matches(": connect from").count()
    });
    assert!(ended, "a session never ended");
    let log = postfix.log();
    assert_eq!(log.matches(": connect from").count(), 1, "one session");
    assert!(
        log.contains(&format!("mail={n} rcpt={n} data={n}")),
        "the session did not carry all {n} messages"
    );
}
