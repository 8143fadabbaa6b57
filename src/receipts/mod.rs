//! `aviso serve`: the HTTP side of delivery. Gateways report what happened to
//! each SMS, mail systems post bounces, recipients unsubscribe with one click,
//! and operations read `/healthz` and `/metrics`.
//!
//! Every endpoint authenticates its caller: SMS reports and unsubscribe links
//! carry a per-message token signed with the installation's key (a forged one
//! is refused with 401, one naming an unknown message with 404), and bounces
//! and citizens' SMS replies need the shared secret. A report is applied once; a replay changes nothing.

mod app;
mod bounce;
mod inbound;
mod metrics;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use app::Receipts;
pub use bounce::{parse_bounce, Bounce};

use app::{answer, secret_refusal, Shared};

use crate::campaigns::{NewReceipt, ReceiptEffect, ReceiptOutcome, ReceiptTarget};
use crate::channels::twilio_suppression;
use crate::domain::{ChannelKind, SuppressionReason, SuppressionScope};
use crate::tokens::Purpose;

pub fn router(receipts: Receipts) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/receipts/sms/{token}",
            get(sms_report_get).post(sms_report_post),
        )
        .route("/bounces", post(bounces))
        .route("/inbound/kannel", get(inbound::kannel))
        .route("/inbound/sms", post(inbound::webhook))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .with_state(Arc::new(receipts))
}

async fn healthz(State(app): State<Shared>) -> Response {
    match app.store.receipt_target(0).await {
        Ok(_) => answer(StatusCode::OK, "ok"),
        Err(e) => {
            tracing::error!("health check: database unreachable: {e}");
            answer(StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// Checks a token and finds its message: 401 for a forged token, 404 for a
/// message that does not exist.
async fn target(app: &Receipts, purpose: Purpose, token: &str) -> Result<ReceiptTarget, Response> {
    let Some(id) = app.tokens.verify(purpose, token) else {
        return Err(answer(StatusCode::UNAUTHORIZED, "invalid token"));
    };
    match app.store.receipt_target(id).await {
        Ok(Some(target)) => Ok(target),
        Ok(None) => Err(answer(StatusCode::NOT_FOUND, "unknown message")),
        Err(e) => {
            tracing::error!("receipt for message {id}: {e}");
            Err(answer(StatusCode::SERVICE_UNAVAILABLE, "try again later"))
        }
    }
}

async fn apply(app: &Receipts, receipt: NewReceipt) -> Response {
    let id = receipt.message_id;
    match app.store.apply_receipt(&receipt, app.clock.now_ms()).await {
        Ok(ReceiptOutcome::Applied | ReceiptOutcome::Pending) => {
            tracing::debug!(
                "message {id}: {} report from {} applied",
                receipt.effect.code(),
                receipt.source
            );
            answer(StatusCode::OK, "ok")
        }
        Ok(ReceiptOutcome::Replayed) => answer(StatusCode::CONFLICT, "report already received"),
        Err(e) => {
            tracing::error!("report for message {id}: {e}");
            answer(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}

/// Kannel's `dlr-url` callback: `?type=%d&reply=%A`.
async fn sms_report_get(
    State(app): State<Shared>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let message = match target(&app, Purpose::Receipt, &token).await {
        Ok(m) => m,
        Err(refused) => return refused,
    };
    let Some(kind) = query.get("type").and_then(|t| t.parse::<u32>().ok()) else {
        return answer(StatusCode::BAD_REQUEST, "missing type");
    };
    // Kannel's report types: 1 delivered, 2 failed, 4 buffered, 8 accepted by
    // the SMSC, 16 rejected by the SMSC.
    let effect = match kind {
        1 => ReceiptEffect::Delivered,
        2 | 16 => ReceiptEffect::Failed,
        4 | 8 => ReceiptEffect::Info,
        _ => return answer(StatusCode::BAD_REQUEST, "unknown report type"),
    };
    let reply = query.get("reply").cloned().filter(|r| !r.is_empty());
    apply(
        &app,
        NewReceipt {
            message_id: message.id,
            source: "kannel".into(),
            effect,
            dedup_key: format!("kannel:{}:{kind}", message.id),
            code: Some(format!("dlr-{kind}")),
            detail: reply,
            suppress: None,
        },
    )
    .await
}

/// Twilio status callbacks (form) and the generic webhook's reports (JSON).
async fn sms_report_post(
    State(app): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let message = match target(&app, Purpose::Receipt, &token).await {
        Ok(m) => m,
        Err(refused) => return refused,
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let receipt = if json {
        let Ok(report) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return answer(StatusCode::BAD_REQUEST, "body is not JSON");
        };
        let status = report["status"].as_str().unwrap_or("").to_ascii_lowercase();
        let effect = match status.as_str() {
            "delivered" => ReceiptEffect::Delivered,
            "failed" | "undelivered" | "rejected" => ReceiptEffect::Failed,
            "accepted" | "queued" | "sent" | "buffered" => ReceiptEffect::Info,
            _ => return answer(StatusCode::BAD_REQUEST, "unknown status"),
        };
        let suppress = match report["reason"].as_str() {
            Some("invalid_number") => Some((SuppressionScope::Sms, SuppressionReason::Invalid)),
            Some("opt_out") => Some((SuppressionScope::Sms, SuppressionReason::OptOut)),
            _ => None,
        };
        NewReceipt {
            message_id: message.id,
            source: "webhook".into(),
            effect,
            dedup_key: format!("webhook:{}:{status}", message.id),
            code: report["code"].as_str().map(str::to_string),
            detail: report["reason"].as_str().map(str::to_string),
            suppress,
        }
    } else {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let Some(status) = form.get("MessageStatus").map(|s| s.to_ascii_lowercase()) else {
            return answer(StatusCode::BAD_REQUEST, "missing MessageStatus");
        };
        let effect = match status.as_str() {
            "delivered" | "read" => ReceiptEffect::Delivered,
            "undelivered" | "failed" => ReceiptEffect::Failed,
            _ => ReceiptEffect::Info,
        };
        let error = form.get("ErrorCode").and_then(|c| c.parse::<i64>().ok());
        NewReceipt {
            message_id: message.id,
            source: "twilio".into(),
            effect,
            dedup_key: format!("twilio:{}:{status}", message.id),
            code: error.map(|c| c.to_string()),
            detail: form.get("ErrorMessage").cloned(),
            suppress: error
                .and_then(twilio_suppression)
                .map(|reason| (SuppressionScope::Sms, reason)),
        }
    };
    apply(&app, receipt).await
}

/// Bounces: an RFC 3464 delivery status notification (`multipart/report`),
/// or the simple JSON form documented in `docs/RECEIPTS.md`.
async fn bounces(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = secret_refusal(&app, &headers) {
        return refused;
    }
    let bounce = match parse_bounce(&body) {
        Ok(b) => b,
        Err(why) => return answer(StatusCode::BAD_REQUEST, &why),
    };
    let message = match app.store.receipt_target(bounce.message_id).await {
        Ok(Some(m)) if m.channel == ChannelKind::Email => m,
        Ok(_) => return answer(StatusCode::NOT_FOUND, "unknown message"),
        Err(e) => {
            tracing::error!("bounce: {e}");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    apply(&app, bounce.receipt(&message)).await
}

/// The page behind the link in the e-mail footer. A GET never unsubscribes:
/// mail scanners follow links. The button posts, like RFC 8058 clients do.
async fn unsubscribe_page(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    if let Err(refused) = target(&app, Purpose::Unsubscribe, &token).await {
        return refused;
    }
    Html(format!(
        "<!doctype html><html lang=\"es\"><meta charset=\"utf-8\"><title>Darse de baja / Unsubscribe</title>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:2em auto\">\
         <h1>¿Dejar de recibir estos mensajes?</h1>\
         <p>No volverás a recibir correos del programa de voto desde el extranjero en esta dirección.</p>\
         <p lang=\"en\">Stop receiving these messages? You will get no more e-mails from the vote from abroad programme at this address.</p>\
         <form method=\"post\" action=\"/unsubscribe/{token}\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Darme de baja / Unsubscribe</button></form></body></html>"
    ))
    .into_response()
}

/// RFC 8058 one-click unsubscribe (`List-Unsubscribe=One-Click`), or the button.
async fn unsubscribe(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    let message = match target(&app, Purpose::Unsubscribe, &token).await {
        Ok(m) => m,
        Err(refused) => return refused,
    };
    let receipt = NewReceipt {
        message_id: message.id,
        source: "unsubscribe".into(),
        effect: ReceiptEffect::Info,
        dedup_key: format!("unsubscribe:{}", message.id),
        code: None,
        detail: Some("recipient unsubscribed".into()),
        suppress: Some((SuppressionScope::Email, SuppressionReason::OptOut)),
    };
    match app.store.apply_receipt(&receipt, app.clock.now_ms()).await {
        // Clicking twice is not an error for the person who clicked.
        Ok(_) => Html(
            "<!doctype html><html lang=\"es\"><meta charset=\"utf-8\"><title>Baja confirmada</title>\
             <body style=\"font-family:sans-serif;max-width:36em;margin:2em auto\">\
             <h1>Listo: ya no recibirás estos correos.</h1><p lang=\"en\">Done: you will not receive these e-mails any more.</p>\
             </body></html>",
        )
        .into_response(),
        Err(e) => {
            tracing::error!("unsubscribe of message {}: {e}", message.id);
            answer(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}
