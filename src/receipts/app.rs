//! What every handler of `aviso serve` shares: the state, plain-text answers,
//! and the check of the shared secret.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::clock::Clock;
use crate::store::Store;
use crate::tokens::Tokens;

/// What the handlers share.
pub struct Receipts {
    pub store: Arc<dyn Store>,
    pub tokens: Tokens,
    pub clock: Arc<dyn Clock>,
    /// The shared secret bounce senders present (`Authorization: Bearer …`);
    /// without one, the bounce endpoint is closed.
    pub bounce_secret: Option<String>,
    /// Handles citizens' SMS replies (`/inbound/…`), which need the same secret.
    pub replies: Option<Arc<crate::replies::Replier>>,
}

pub(super) type Shared = Arc<Receipts>;

/// An answer with a short plain-text explanation.
pub(super) fn answer(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// Checks the shared secret of bounces and inbound SMS: a bearer token, or
/// the password of HTTP basic authentication (gateways such as Kannel put it
/// in the URL they call). The refusal, if any: 503 while no secret is set,
/// 401 for a wrong one.
pub(super) fn secret_refusal(app: &Receipts, headers: &HeaderMap) -> Option<Response> {
    use base64::Engine as _;
    let Some(secret) = &app.bounce_secret else {
        return Some(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "bounce and inbound SMS intake is closed: set AVISO_RECEIPTS_SECRET (or [receipts] secret)",
        ));
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let presented = if let Some(token) = authorization.strip_prefix("Bearer ") {
        token.as_bytes().to_vec()
    } else if let Some(basic) = authorization.strip_prefix("Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|pair| {
                let colon = pair.iter().position(|b| *b == b':')?;
                Some(pair[colon + 1..].to_vec())
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    (!constant_time_eq(&presented, secret.as_bytes()))
        .then(|| answer(StatusCode::UNAUTHORIZED, "invalid secret"))
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
