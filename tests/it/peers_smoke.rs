//! Self-test of the peer helpers: each real peer takes a message from a plain
//! std client and the helper reports it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::peers::{http_get, Kannel, SmsCoding, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);

/// A raw SMTP client session: sends a command, returns the (last line of the) reply.
struct Smtp {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Smtp {
    fn connect(port: u16) -> (Smtp, String) {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to smtp-sink");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut smtp = Smtp { stream, reader };
        let greeting = smtp.reply();
        (smtp, greeting)
    }

    fn send(&mut self, line: &str) -> String {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    /// Reads up to the reply's last line (`NNN ` rather than `NNN-`).
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read SMTP reply");
            let line = line.trim_end().to_string();
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return line;
            }
        }
    }

    /// `data` ends with CRLF; returns the reply to the final dot.
    fn send_message(&mut self, from: &str, to: &str, data: &str) -> String {
        assert!(self.send(&format!("MAIL FROM:<{from}>")).starts_with("250"));
        assert!(self.send(&format!("RCPT TO:<{to}>")).starts_with("250"));
        assert!(self.send("DATA").starts_with("354"));
        self.send(&format!("{data}."))
    }
}

#[test]
#[ignore = "needs smtp-sink: run ops/test"]
fn smtp_sink_keeps_messages_and_restarts_with_faults() {
    let mut sink = SmtpSink::start(&[]);
    let (mut smtp, greeting) = Smtp::connect(sink.port());
    assert_eq!(greeting, "220 smtp-sink ESMTP");
    assert!(smtp.send("EHLO client.example").starts_with("250"));
    let data = "From: a@example.org\r\nSubject: Prueba\r\n\r\nHola\r\n..punto\r\n";
    assert_eq!(
        smtp.send_message("a@example.org", "b@example.com", data),
        "250 2.0.0 Ok"
    );
    assert_eq!(smtp.send("QUIT"), "221 Bye");

    assert_eq!(sink.wait_for_count(1, WAIT), 1);
    let message = &sink.messages()[0];
    assert!(
        message.starts_with("X-Client-Addr: 127.0.0.1\n"),
        "{message}"
    );
    assert!(
        message.contains("X-Mail-Args: <a@example.org>\nX-Rcpt-Args: <b@example.com>\n"),
        "{message}"
    );
    assert!(
        message.ends_with("Subject: Prueba\n\nHola\n.punto\n\n"),
        "{message}"
    );

    // A transaction cut by the server going down leaves no message behind.
    let (mut smtp, _) = Smtp::connect(sink.port());
    smtp.send("EHLO client.example");
    smtp.send("MAIL FROM:<a@example.org>");
    smtp.send("RCPT TO:<c@example.com>");
    sink.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", sink.port())).is_err(),
        "smtp-sink still accepts after stop"
    );

    sink.restart(&["-r", "rcpt"]);
    let (mut smtp, _) = Smtp::connect(sink.port());
    smtp.send("EHLO client.example");
    smtp.send("MAIL FROM:<a@example.org>");
    assert_eq!(
        smtp.send("RCPT TO:<b@example.com>"),
        "450 4.3.0 Error: command failed"
    );
    assert_eq!(sink.message_count(), 1);
}

#[test]
#[ignore = "needs Kannel: run ops/test"]
fn kannel_delivers_gsm_ucs2_and_concatenated_sms_and_comes_back() {
    let mut kannel = Kannel::start();
    // Restarts keep the ports, so the URL stays valid.
    let sendsms = kannel.sendsms_url();
    let send = |query: &str| {
        let url = format!("{sendsms}?username=aviso&password=secret&from=INE&{query}");
        http_get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
    };
    let accepted = (202, "0: Accepted for delivery".to_string());
    assert_eq!(send("to=%2B12135550123&text=Hola%20mundo"), accepted);
    assert_eq!(
        send("to=%2B12135550124&text=Votaci%C3%B3n%20%C2%A1s%C3%AD!&charset=UTF-8&coding=2"),
        accepted
    );
    assert_eq!(send("to=%2B12135550125&text=uno%0Ados"), accepted);
    assert_eq!(
        send(&format!("to=%2B12135550126&text={}", "x".repeat(200))),
        accepted
    );
    assert_eq!(
        send("text=hi"),
        (400, "Missing receiver number, rejected".to_string())
    );

    assert_eq!(kannel.wait_for_received(4, WAIT), 4);
    let received = kannel.received();
    assert_eq!(
        (received[0].coding, received[0].text.as_str()),
        (SmsCoding::Gsm, "Hola mundo")
    );
    assert_eq!(
        (received[1].coding, received[1].text.as_str()),
        (SmsCoding::Ucs2, "Votación ¡sí!")
    );
    assert_eq!(received[2].text, "uno\ndos");
    assert_eq!(
        (received[3].parts, received[3].text.clone()),
        (2, "x".repeat(200))
    );
    assert!(kannel.admin_status().contains("Status: running"));

    kannel.stop_sms_path();
    assert!(
        http_get(&kannel.sendsms_url()).is_err(),
        "sendsms still answers with smsbox stopped"
    );
    kannel.start_sms_path();
    assert_eq!(send("to=%2B12135550127&text=de%20vuelta"), accepted);
    // Delivered before the whole gateway goes down: a message still queued in
    // bearerbox when fakesmsc stops is not this test's business.
    assert_eq!(kannel.wait_for_received(5, WAIT), 5);

    kannel.stop_bearerbox();
    assert!(
        http_get(&kannel.sendsms_url()).is_err(),
        "sendsms still answers with bearerbox stopped"
    );
    kannel.start_sms_path();
    assert_eq!(send("to=%2B12135550128&text=otra%20vez"), accepted);

    assert_eq!(kannel.wait_for_received(6, WAIT), 6);
    let texts: Vec<String> = kannel
        .received()
        .into_iter()
        .skip(4)
        .map(|sms| sms.text)
        .collect();
    assert_eq!(texts, ["de vuelta", "otra vez"]);
}
