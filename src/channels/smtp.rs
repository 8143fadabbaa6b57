//! SMTP with lettre's connection (the protocol, STARTTLS, AUTH) and a pool of
//! our own. lettre's pooled transport is not used for two reasons measured on
//! loopback: its sockets keep Nagle's algorithm on, so the final `.` of a
//! message waits for the server's delayed ACK (40 ms a message per
//! connection), and it sends a NOOP before every reuse (one more round trip a
//! message). Here sockets are TCP_NODELAY and a connection is only re-checked
//! after it sat idle for a while. With PIPELINING the message goes out in
//! two writes (envelope, then data) and two round trips.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::sync::Mutex;

use super::{
    query_param, Accepted, Channel, DeliveryError, DkimSigner, Outgoing, ProviderContext,
    ProviderInfo,
};
use crate::domain::{ChannelKind, SuppressionReason};

pub struct SmtpChannel {
    info: ProviderInfo,
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Connections waiting for their next message.
    idle: Mutex<Vec<Pooled>>,
    /// The last connection opened offered 8BITMIME: messages are built 8-bit.
    eight_bit: AtomicBool,
    dkim: Option<DkimSigner>,
}

/// An open connection, what its server offers, and when it was last used.
struct Pooled {
    conn: AsyncSmtpConnection,
    /// The server advertised PIPELINING (RFC 2920): MAIL, RCPT and DATA can go
    /// in one write, two round trips a message instead of four.
    pipelining: bool,
    /// The server advertised 8BITMIME (RFC 6152).
    eight_bit: bool,
    last_used: Instant,
}

/// How long a connection may sit idle before it is checked (NOOP) again.
const TRUST_IDLE: Duration = Duration::from_secs(5);
/// How long to wait for a server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Plain,
    Starttls,
    Wrapper,
}

impl SmtpChannel {
    /// `smtp://host:port?tls=none|starttls|tls&pool=N&rate=R&dkim=S._domainkey.D&dkim_key=FILE`.
    /// STARTTLS is required by default; `tls=none` is accepted only for
    /// loopback hosts, so a typo cannot send voters' data in clear text over a
    /// network. The DKIM key is loaded and checked here, before any message.
    pub fn open(url: &str, ctx: &ProviderContext) -> Result<SmtpChannel, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or("no host: write smtp://host:port")?
            .trim_matches(['[', ']'])
            .to_string();
        let tls = match query_param(&parsed, "tls").as_deref() {
            None if parsed.scheme() == "smtps" => Tls::Wrapper,
            None | Some("starttls") => Tls::Starttls,
            Some("tls") => Tls::Wrapper,
            Some("none") => Tls::Plain,
            Some(other) => return Err(format!("tls={other}: use none, starttls or tls")),
        };
        if tls == Tls::Plain && !is_loopback(&host) {
            return Err(format!(
                "tls=none is only allowed for a server on this machine (127.0.0.1, ::1, localhost), not {host}"
            ));
        }
        let port = parsed.port().unwrap_or(match tls {
            Tls::Wrapper => 465,
            _ => 587,
        });
        let (pool, rate) = super::pool_and_rate(&parsed, 8)?;
        if tls != Tls::Plain {
            // Fails now, not at the first message, if TLS cannot be set up.
            TlsParameters::new(host.clone()).map_err(|e| format!("TLS setup: {e}"))?;
        }
        let dkim = DkimSigner::from_settings(
            query_param(&parsed, "dkim").as_deref(),
            query_param(&parsed, "dkim_key").as_deref(),
            ctx.dkim_key_file.as_deref(),
            &ctx.base_dir,
        )
        .map_err(|e| e.to_string())?;
        let credentials = match (&ctx.smtp_username, &ctx.smtp_password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            _ => None,
        };
        Ok(SmtpChannel {
            info: ProviderInfo {
                name: format!("smtp://{host}:{port}"),
                kind: ChannelKind::Email,
                rate,
                connections: pool,
            },
            host,
            port,
            tls,
            credentials,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            eight_bit: AtomicBool::new(false),
            dkim,
        })
    }

    /// A connection ready for a message: an idle one (checked first if it sat
    /// idle long), or a new one.
    async fn connection(&self) -> Result<Pooled, DeliveryError> {
        loop {
            let Some(mut pooled) = self.idle.lock().await.pop() else {
                return self.connect().await;
            };
            if pooled.conn.has_broken() {
                continue;
            }
            if pooled.last_used.elapsed() < TRUST_IDLE || pooled.conn.test_connected().await {
                return Ok(pooled);
            }
            pooled.conn.abort().await;
        }
    }

    async fn connect(&self) -> Result<Pooled, DeliveryError> {
        let server = format!("{}:{}", self.host, self.port);
        let tls = || TlsParameters::new(self.host.clone()).map_err(|e| classify(&e));
        let mut conn = match self.tls {
            // Implicit TLS goes through lettre's own connect.
            Tls::Wrapper => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(CONNECT_TIMEOUT),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(|e| classify(&e))?,
            Tls::Plain | Tls::Starttls => {
                let stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| {
                    DeliveryError::temporary(format!("cannot connect to {server}: timed out"))
                })?
                .map_err(|e| {
                    DeliveryError::temporary(format!("cannot connect to {server}: {e}"))
                })?;
                stream.set_nodelay(true).map_err(|e| {
                    DeliveryError::temporary(format!("connection to {server}: {e}"))
                })?;
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                        .await
                        .map_err(|e| classify(&e))?;
                if self.tls == Tls::Starttls {
                    // Required: without it voters' data would cross the network in clear.
                    conn.starttls(tls()?, &self.hello)
                        .await
                        .map_err(|e| classify(&e))?;
                }
                conn
            }
        };
        // lettre keeps only the extensions it uses; ask again to learn PIPELINING.
        let ehlo = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(|e| classify(&e))?;
        let pipelining = ehlo.message().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
        });
        let eight_bit = conn.server_info().supports_feature(Extension::EightBitMime);
        self.eight_bit.store(eight_bit, Ordering::Relaxed);
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(Pooled {
            conn,
            pipelining,
            eight_bit,
            last_used: Instant::now(),
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[async_trait]
impl Channel for SmtpChannel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn takes_8bit(&self) -> bool {
        self.eight_bit.load(Ordering::Relaxed)
    }

    fn dkim(&self) -> Option<&DkimSigner> {
        self.dkim.as_ref()
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError> {
        let Outgoing::Email(email) = message else {
            return Err(super::wrong_kind("an SMTP server", "SMS"));
        };
        // A refusal while connecting (TLS, AUTH) is the installation's problem, not
        // the recipient's: retried, never a permanent failure of the message.
        let mut pooled = self.connection().await.map_err(|e| match e {
            DeliveryError::Permanent { code, reason, .. } => DeliveryError::Temporary {
                code,
                reason: format!("{reason} (check the SMTP server settings and credentials)"),
                retry_after: None,
                throttle: false,
            },
            temporary => temporary,
        })?;
        if !pooled.eight_bit && !email.raw.is_ascii() {
            // Built 8-bit while another connection offered 8BITMIME and this one
            // does not: from now on messages are built quoted-printable.
            self.eight_bit.store(false, Ordering::Relaxed);
            self.idle.lock().await.push(pooled);
            return Err(DeliveryError::temporary(
                "this SMTP server does not take 8-bit messages (no 8BITMIME); the message will be rebuilt and retried",
            ));
        }
        let ascii = email
            .envelope
            .from()
            .into_iter()
            .chain(email.envelope.to())
            .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        let sent = if pooled.pipelining && ascii {
            send_pipelined(&mut pooled.conn, &email.envelope, &email.raw).await
        } else {
            pooled.conn.send(&email.envelope, &email.raw).await
        };
        match sent {
            Ok(response) => {
                pooled.last_used = Instant::now();
                self.idle.lock().await.push(pooled);
                Ok(Accepted {
                    code: Some(response.code().to_string()),
                    provider_ref: response.first_line().map(|l| l.chars().take(120).collect()),
                })
            }
            // lettre aborts the connection on any failure: it is not reused.
            Err(e) => Err(classify(&e)),
        }
    }
}

/// One mail transaction with MAIL, RCPT and DATA sent together (RFC 2920), then
/// the message. Any refusal ends the transaction; the connection is then
/// dropped, not reused, since replies may still be pending on it.
async fn send_pipelined(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<Response, lettre::transport::smtp::Error> {
    let Ok(text) = std::str::from_utf8(raw) else {
        // Not text: lettre's own path, byte by byte.
        return conn.send(envelope, raw).await;
    };
    let mut parameters = Vec::new();
    if !raw.is_ascii() {
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mut group = Mail::new(envelope.from().cloned(), parameters).to_string();
    for to in envelope.to() {
        group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
    }
    group.push_str(&Data.to_string());
    conn.command(group).await?;
    for _ in envelope.to() {
        conn.read_response().await?;
    }
    conn.read_response().await?;
    conn.command(DataBlock(text)).await
}

/// A message as DATA carries it (RFC 5321 §4.5.2): a dot doubled at the start
/// of every line, then the end-of-data line. By hand rather than lettre's
/// `message`, which copies byte by byte and sends the end-of-data line as a
/// packet of its own: here the message is one write.
struct DataBlock<'a>(&'a str);

impl fmt::Display for DataBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest.starts_with('.') {
            f.write_char('.')?;
        }
        // "\r\n." is ASCII, so every cut is on a character boundary.
        while let Some(i) = memchr::memmem::find(rest.as_bytes(), b"\r\n.") {
            f.write_str(&rest[..i + 3])?;
            f.write_char('.')?;
            rest = &rest[i + 3..];
        }
        f.write_str(rest)?;
        // A final CRLF already ends the last line: adding another would
        // deliver the message with an empty line it did not have.
        if !self.0.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

/// SMTP replies by their codes: 5xx permanent (and a bad mailbox, 5.1.x,
/// suppressed), 4xx temporary (421/451/452 also mean "slow down"), anything
/// without a reply (network, TLS, timeout) temporary.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let code = e.status().map(|c| c.to_string());
    let reason: String = e.to_string().chars().take(300).collect();
    if e.is_permanent() {
        let bad_mailbox = reason.contains(" 5.1.");
        return DeliveryError::Permanent {
            code,
            reason,
            suppress: bad_mailbox.then_some(SuppressionReason::HardBounce),
        };
    }
    let throttle = matches!(code.as_deref(), Some("421" | "451" | "452"));
    DeliveryError::Temporary {
        code,
        reason,
        retry_after: None,
        throttle,
    }
}

#[cfg(test)]
mod tests {
    use super::DataBlock;

    #[test]
    fn data_block_doubles_leading_dots_and_ends_the_data() {
        assert_eq!(DataBlock("a\r\nb").to_string(), "a\r\nb\r\n.\r\n");
        assert_eq!(
            DataBlock(".x\r\n.\r\n..y\r\nz.\r\n").to_string(),
            "..x\r\n..\r\n...y\r\nz.\r\n.\r\n"
        );
        assert_eq!(DataBlock("a\r\n").to_string(), "a\r\n.\r\n");
        assert_eq!(DataBlock("ñ\r\n.é").to_string(), "ñ\r\n..é\r\n.\r\n");
        assert_eq!(DataBlock("").to_string(), "\r\n.\r\n");
    }
}
