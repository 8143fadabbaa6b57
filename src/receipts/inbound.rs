//! Inbound SMS: citizens' replies (BAJA, ALTA…), delivered by Kannel's
//! `sms-service` (`GET /inbound/kannel?from=%p&text=%a&coding=%c`) or posted as JSON
//! (`POST /inbound/sms` with `{"from": "+12135550123", "text": "BAJA"}`).
//! Both need the receipts secret, like bounces: as a bearer token, or as the
//! password of HTTP basic authentication (which Kannel sends when its
//! `get-url` reads `http://aviso:SECRET@host:port/…`). What the SMS asks for
//! is applied by [`crate::replies::Replier`].

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::app::{answer, secret_refusal, Shared};
use crate::domain::PhoneNumber;
use crate::replies::{InboundSource, NewInbound};

/// Kannel's `sms-service`: `?from=%p&text=%a&coding=%c`. Kannel passes a
/// UCS-2 message's text as its UTF-16BE bytes (`coding=2`), others as they
/// came. The answer's body is empty, so Kannel has no text to send back
/// (aviso sends its own confirmation).
pub(super) async fn kannel(
    State(app): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = secret_refusal(&app, &headers) {
        return refused;
    }
    let fields: HashMap<String, Vec<u8>> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&url_decode(k)).into_owned(),
                url_decode(v),
            )
        })
        .collect();
    let text = fields.get("text").map(|bytes| {
        if fields.get("coding").is_some_and(|c| c.as_slice() == b"2") {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        }
    });
    let from = fields
        .get("from")
        .map(|f| String::from_utf8_lossy(f).into_owned());
    match receive(&app, InboundSource::Kannel, from.as_ref(), text.as_ref()).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(refused) => refused,
    }
}

/// A query value's bytes: `+` is a space, `%XX` a byte.
fn url_decode(encoded: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(&encoded.replace('+', " ")).collect()
}

/// The JSON form: `{"from": "+12135550123", "text": "BAJA"}`; answers with
/// what was done (`{"id", "keyword", "action", "reply"}`).
pub(super) async fn webhook(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = secret_refusal(&app, &headers) {
        return refused;
    }
    let Ok(sms) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return answer(
            StatusCode::BAD_REQUEST,
            "body is not JSON: send {\"from\": \"+12135550123\", \"text\": \"BAJA\"}",
        );
    };
    let from = sms["from"].as_str().map(str::to_string);
    let text = sms["text"].as_str().map(str::to_string);
    match receive(&app, InboundSource::Webhook, from.as_ref(), text.as_ref()).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(refused) => refused,
    }
}

async fn receive(
    app: &Shared,
    source: InboundSource,
    from: Option<&String>,
    text: Option<&String>,
) -> Result<crate::replies::InboundOutcome, Response> {
    let Some(replier) = &app.replies else {
        return Err(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "inbound SMS are not handled by this server",
        ));
    };
    let Some(from) = from.filter(|f| !f.trim().is_empty()) else {
        return Err(answer(
            StatusCode::BAD_REQUEST,
            "missing from (the sender's number)",
        ));
    };
    let Some(text) = text else {
        return Err(answer(StatusCode::BAD_REQUEST, "missing text"));
    };
    // Gateways give the sender in international form; without a `+` the
    // country code is still there ("12135550123").
    let phone = PhoneNumber::parse(from, None)
        .or_else(|_| PhoneNumber::parse(&format!("+{}", from.trim()), None))
        .map_err(|e| answer(StatusCode::BAD_REQUEST, &format!("from: {e}")))?;
    replier
        .handle(NewInbound::new(source, phone, text))
        .await
        .map_err(|e| {
            tracing::error!("inbound SMS: {e}");
            answer(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        })
}
