//! What the HTTP-based SMS providers share: one keep-alive client per provider,
//! timeouts, and the classification of HTTP answers.
//!
//! Twilio and webhooks go through reqwest. Kannel, the bulk path (thousands of
//! messages a second on the local network), goes through [`Gateway`]: hyper's
//! connections with a pool of our own. reqwest's layers cost about 10 µs of
//! CPU per request, and hyper-util's pooled client under it, which spawns a
//! task per request to hand the connection back, about 4 µs more than this;
//! on a gateway's own machine that CPU comes out of the gateway's (see
//! docs/BENCHMARKS.md, "SMS dispatch").

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::DeliveryError;

/// The most of a gateway's answer that is read: answers are a line or two, and
/// a misbehaving gateway must not fill memory.
const MAX_ANSWER: usize = 64 * 1024;

type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A connection idle longer than this is closed rather than used: a firewall
/// or the gateway may have dropped it without a word, and a request on it
/// would wait for the send timeout (hyper-util's pool uses the same 90 s).
const IDLE_LIMIT: Duration = Duration::from_secs(90);

/// Keep-alive HTTP/1.1 connections to one gateway: up to `pool` kept idle
/// between requests, TLS for `https` URLs, no redirects followed (see
/// [`classify_status`]). How many are open at once is bounded by the caller
/// (the provider's connection limit); no overall time limit of its own
/// either: the worker bounds every send.
pub(super) struct Gateway {
    /// `scheme://host:port`, where connections go.
    base: hyper::Uri,
    host: hyper::header::HeaderValue,
    connector: HttpsConnector,
    /// Connections between requests, each with when it became idle.
    idle: Mutex<Vec<(SendRequest<Empty<Bytes>>, Instant)>>,
    pool: usize,
    user_agent: hyper::header::HeaderValue,
}

impl Gateway {
    /// A gateway at `base` (`http://host:port` or `https://…`).
    pub(super) fn new(base: &str, pool: usize) -> Result<Gateway, String> {
        let base: hyper::Uri = base
            .parse()
            .map_err(|e| format!("not a gateway address: {e}"))?;
        let host = base
            .authority()
            .and_then(|a| hyper::header::HeaderValue::from_str(a.as_str()).ok())
            .ok_or("the gateway's address has no host")?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        http.enforce_http(false);
        Ok(Gateway {
            base,
            host,
            connector: hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
            idle: Mutex::new(Vec::with_capacity(pool)),
            pool: pool.max(1),
            user_agent: hyper::header::HeaderValue::from_static(concat!(
                "aviso/",
                env!("CARGO_PKG_VERSION")
            )),
        })
    }

    /// GETs `target` (a path and query) and reads the answer.
    pub(super) async fn get(&self, target: hyper::Uri) -> Result<Reply, DeliveryError> {
        let mut request = hyper::Request::get(target)
            .header(hyper::header::HOST, self.host.clone())
            .header(hyper::header::USER_AGENT, self.user_agent.clone())
            .body(Empty::new())
            .map_err(|e| DeliveryError::temporary(format!("cannot build the request: {e}")))?;
        loop {
            let kept = self.idle.lock().ok().and_then(|mut idle| {
                // The most recently used first; if even it idled too long, all did.
                let (sender, since) = idle.pop()?;
                if since.elapsed() < IDLE_LIMIT {
                    return Some(sender);
                }
                idle.clear();
                None
            });
            let fresh = kept.is_none();
            let mut sender = match kept {
                Some(sender) => sender,
                None => self.connect().await?,
            };
            // A kept connection may have been closed by the gateway since.
            if let Err(e) = sender.ready().await {
                match fresh {
                    true => return Err(unanswered("request failed", &e)),
                    false => continue,
                }
            }
            let response = match sender.try_send_request(request).await {
                Ok(response) => response,
                Err(mut e) => match e.take_message() {
                    // Never written: safe to send on another connection. A
                    // fresh one failing this way would fail again.
                    Some(unsent) if !fresh => {
                        request = unsent;
                        continue;
                    }
                    _ => return Err(unanswered("request failed", e.error())),
                },
            };
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned());
            // Only a connection whose answer was read whole can carry another.
            if body.is_ok() {
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < self.pool {
                        idle.push((sender, Instant::now()));
                    }
                }
            }
            return Ok(Reply {
                status,
                retry_after,
                body: body.unwrap_or_default(),
            });
        }
    }

    /// A new connection, driven by a task of its own until either side closes it.
    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, DeliveryError> {
        use tower_service::Service as _;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| unanswered("cannot connect", &*e))?;
        let io = connector
            .call(self.base.clone())
            .await
            .map_err(|e| unanswered("cannot connect", &*e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| unanswered("cannot connect", &e))?;
        // Its errors reach the request that was using it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// A client that reuses connections (up to `pool` idle per host) and never
/// waits forever on a gateway.
pub(super) fn client(pool: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool.max(1))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("aviso/", env!("CARGO_PKG_VERSION")))
        // A gateway that redirects is misconfigured in aviso.toml: say so
        // (see classify_status) rather than resend voters' data and the
        // credentials to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A request that got no answer: the gateway is down, slow or unreachable.
pub(super) fn transport_error(e: &reqwest::Error) -> DeliveryError {
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    unanswered(what, e)
}

/// A temporary failure saying `what` went wrong and why. Only the error's
/// cause is told: the error's own message names the URL, which may carry
/// credentials.
fn unanswered(what: &str, e: &dyn std::error::Error) -> DeliveryError {
    let detail = e
        .source()
        .map(|s| s.to_string())
        .unwrap_or_else(|| what.to_string());
    DeliveryError::temporary(format!("{what}: {detail}"))
}

/// What a gateway answered.
pub(super) struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: String,
}

pub(super) async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    Reply {
        status,
        retry_after,
        body,
    }
}

/// `Retry-After` in seconds (HTTP dates are rare from SMS gateways; ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The usual meaning of an HTTP failure: 429 and 5xx (and 408) are temporary,
/// 429 also means "slow down"; 401/403 are a configuration problem, treated as
/// temporary so no message is lost while someone fixes the credentials (the
/// campaign pauses itself if it keeps happening); other 4xx are permanent.
pub(super) fn classify_status(
    status: StatusCode,
    body: &str,
    retry_after: Option<Duration>,
) -> DeliveryError {
    let code = Some(status.as_u16().to_string());
    let reason = format!(
        "HTTP {}: {}",
        status.as_u16(),
        body.trim().chars().take(200).collect::<String>()
    );
    match status.as_u16() {
        429 => DeliveryError::Temporary {
            code,
            reason,
            retry_after,
            throttle: true,
        },
        408 | 500..=599 => DeliveryError::Temporary {
            code,
            reason,
            retry_after,
            throttle: false,
        },
        300..=399 => DeliveryError::Temporary {
            code,
            reason: format!("{reason} (the gateway redirects: set the provider URL to the address it points to)"),
            retry_after: None,
            throttle: false,
        },
        401 | 403 => DeliveryError::Temporary {
            code,
            reason: format!("{reason} (check the provider's credentials)"),
            retry_after: None,
            throttle: false,
        },
        _ => DeliveryError::Permanent {
            code,
            reason,
            suppress: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let temporary = |s: u16| {
            matches!(
                classify_status(StatusCode::from_u16(s).unwrap(), "", None),
                DeliveryError::Temporary { .. }
            )
        };
        assert!(
            temporary(429) && temporary(500) && temporary(503) && temporary(408) && temporary(403)
        );
        assert!(!temporary(400) && !temporary(404) && !temporary(422));
        assert!(temporary(301) && temporary(302) && temporary(307));
        assert!(matches!(
            classify_status(
                StatusCode::TOO_MANY_REQUESTS,
                "",
                Some(Duration::from_secs(2))
            ),
            DeliveryError::Temporary {
                throttle: true,
                retry_after: Some(_),
                ..
            }
        ));
    }

    /// How a fake gateway ends each answer.
    #[derive(Clone, Copy)]
    enum Ending {
        KeepAlive,
        /// Says `Connection: close` and closes.
        Close,
        /// Closes without saying so, as a gateway dropping idle connections does.
        Drop,
    }

    /// A gateway on loopback that answers every request like Kannel and
    /// counts the connections it accepted.
    async fn fake_gateway(
        ending: Ending,
        body: String,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let close = match ending {
                                Ending::Close => "Connection: close\r\n",
                                _ => "",
                            };
                            let answer = format!(
                                "HTTP/1.1 202 Accepted\r\n{close}Content-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                            if !matches!(ending, Ending::KeepAlive) {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (base, accepted)
    }

    async fn send_ten(ending: Ending, pause: Duration) -> usize {
        let (base, accepted) = fake_gateway(ending, "0: Accepted for delivery\n".into()).await;
        let gateway = Gateway::new(&base, 2).unwrap();
        for _ in 0..10 {
            let reply = tokio::time::timeout(
                Duration::from_secs(5),
                gateway.get("/cgi-bin/sendsms?to=%2B1".parse().unwrap()),
            )
            .await
            .expect("no answer in 5 s")
            .unwrap_or_else(|e| panic!("a gateway that answers must be reached: {e:?}"));
            assert_eq!(reply.status, StatusCode::ACCEPTED);
            assert_eq!(reply.body, "0: Accepted for delivery\n");
            tokio::time::sleep(pause).await;
        }
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn connections_are_kept_and_closed_ones_replaced() {
        assert_eq!(
            send_ten(Ending::KeepAlive, Duration::ZERO).await,
            1,
            "one connection, reused"
        );
        assert_eq!(
            send_ten(Ending::Close, Duration::ZERO).await,
            10,
            "never reused after Connection: close"
        );
        // Closed while idle (the pause lets the close arrive): noticed before
        // use, so no request is lost on it.
        assert_eq!(send_ten(Ending::Drop, Duration::from_millis(20)).await, 10);
    }

    #[tokio::test]
    async fn an_answer_too_long_to_read_is_not_taken_for_one() {
        let (base, _) = fake_gateway(Ending::KeepAlive, "0".repeat(MAX_ANSWER + 1)).await;
        let reply = Gateway::new(&base, 1)
            .unwrap()
            .get("/cgi-bin/sendsms".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.body, "", "the answer is cut off, not read whole");
    }
}
