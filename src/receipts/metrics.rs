//! `/metrics` in the Prometheus text format: messages by status and channel,
//! attempts by provider and outcome (errors included), and send latency.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::app::Shared;
use crate::store::LATENCY_BUCKETS_MS;

pub(super) async fn metrics(State(app): State<Shared>) -> Response {
    let snapshot = match app.store.metrics().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("metrics: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response();
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP aviso_messages Messages in the outbox, by channel and status."
    );
    let _ = writeln!(out, "# TYPE aviso_messages gauge");
    for (channel, status, n) in &snapshot.messages {
        let _ = writeln!(
            out,
            "aviso_messages{{channel=\"{}\",status=\"{}\"}} {n}",
            label(channel),
            label(status)
        );
    }
    let _ = writeln!(out, "# HELP aviso_attempts_total Send attempts by provider and outcome (temporary and permanent are provider errors).");
    let _ = writeln!(out, "# TYPE aviso_attempts_total counter");
    for (provider, outcome, n) in &snapshot.attempts {
        let _ = writeln!(
            out,
            "aviso_attempts_total{{provider=\"{}\",outcome=\"{}\"}} {n}",
            label(provider),
            label(outcome)
        );
    }
    let _ = writeln!(
        out,
        "# HELP aviso_send_latency_seconds Time a provider took to answer a send."
    );
    let _ = writeln!(out, "# TYPE aviso_send_latency_seconds histogram");
    for row in &snapshot.latency {
        let provider = label(&row.provider);
        for (le, n) in LATENCY_BUCKETS_MS.iter().zip(&row.buckets) {
            let _ = writeln!(
                out,
                "aviso_send_latency_seconds_bucket{{provider=\"{provider}\",le=\"{}\"}} {n}",
                *le as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "aviso_send_latency_seconds_bucket{{provider=\"{provider}\",le=\"+Inf\"}} {}",
            row.count
        );
        let _ = writeln!(
            out,
            "aviso_send_latency_seconds_sum{{provider=\"{provider}\"}} {}",
            row.sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "aviso_send_latency_seconds_count{{provider=\"{provider}\"}} {}",
            row.count
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// A label value with the characters Prometheus needs escaped, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
