//! The indicators as a terminal table, CSV and JSON, and the message ledger.
//! JSON keeps counts exact; percentages are rounded to one decimal only where
//! they are printed.

use std::io::{self, Write};

use serde_json::{Map, Value};

use super::indicators::{GroupKey, Measures, Report};
use super::{inert_cell, thousands};
use crate::domain::{mask_address, Language};
use crate::store::{LedgerRow, Store, StoreError};

/// `12.345` → `12.3`; nothing → empty.
pub fn format_pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}")).unwrap_or_default()
}

/// The measure columns, in the order every format uses.
pub(super) const MEASURES: [&str; 12] = [
    "programmed",
    "sent",
    "delivered",
    "failed",
    "suppressed",
    "expired",
    "capped",
    "indicator_pct",
    "delivery_rate_pct",
    "segments",
    "spent",
    "no_price",
];

/// The measures in `MEASURES` order, as JSON values (money as a decimal
/// string: exact, where a JSON number would be a float).
fn measure_values(m: &Measures) -> [Value; MEASURES.len()] {
    [
        m.programmed.map(Value::from).unwrap_or(Value::Null),
        m.sent.into(),
        m.delivered.into(),
        m.failed.into(),
        m.suppressed.into(),
        m.expired.into(),
        m.capped.into(),
        m.indicator_pct().map(Value::from).unwrap_or(Value::Null),
        m.delivery_rate_pct()
            .map(Value::from)
            .unwrap_or(Value::Null),
        m.segments.into(),
        m.spent
            .map(|s| Value::String(s.to_string()))
            .unwrap_or(Value::Null),
        m.no_price.into(),
    ]
}

/// An array of objects: the group keys, then exactly the measures.
pub fn to_json(report: &Report) -> Value {
    let rows = report
        .rows
        .iter()
        .map(|row| {
            let mut object = Map::new();
            for (key, value) in report.keys.iter().zip(&row.key) {
                object.insert(
                    key.name().into(),
                    value.clone().map(Value::String).unwrap_or(Value::Null),
                );
            }
            for (name, value) in MEASURES.iter().zip(measure_values(&row.measures)) {
                object.insert((*name).into(), value);
            }
            if let Some(currency) = &report.currency {
                object.insert("currency".into(), Value::String(currency.clone()));
            }
            Value::Object(object)
        })
        .collect();
    Value::Array(rows)
}

/// UTF-8 with a BOM (so spreadsheets read the accents), one header row, the
/// same columns as the JSON, cells that would run as formulas made inert.
pub fn to_csv(report: &Report) -> Vec<u8> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let header: Vec<&str> = report
            .keys
            .iter()
            .map(|k| k.name())
            .chain(MEASURES)
            .collect();
        let _ = w.write_record(&header);
        for row in &report.rows {
            let m = &row.measures;
            let mut cells: Vec<String> = row
                .key
                .iter()
                .map(|v| inert_cell(v.as_deref().unwrap_or("")))
                .collect();
            cells.extend([
                m.programmed.map(|p| p.to_string()).unwrap_or_default(),
                m.sent.to_string(),
                m.delivered.to_string(),
                m.failed.to_string(),
                m.suppressed.to_string(),
                m.expired.to_string(),
                m.capped.to_string(),
                format_pct(m.indicator_pct()),
                format_pct(m.delivery_rate_pct()),
                m.segments.to_string(),
                m.spent.map(|s| s.to_string()).unwrap_or_default(),
                m.no_price.to_string(),
            ]);
            let _ = w.write_record(&cells);
        }
        let _ = w.flush();
    }
    out
}

/// Column titles in the report's language.
pub fn title(key: &str, lang: Language) -> &'static str {
    let (es, en) = match key {
        "activity" => ("Actividad", "Activity"),
        "activity_name" => ("Nombre", "Name"),
        "month" => ("Mes", "Month"),
        "entity" => ("Entidad", "Entity"),
        "channel" => ("Canal", "Channel"),
        "country" => ("País", "Country"),
        "language" => ("Idioma", "Language"),
        "programmed" => ("Programados", "Programmed"),
        "sent" => ("Enviados", "Sent"),
        "delivered" => ("Entregados", "Delivered"),
        "failed" => ("Fallidos", "Failed"),
        "suppressed" => ("Suprimidos", "Suppressed"),
        "expired" => ("Vencidos", "Expired"),
        "capped" => ("Retenidos", "Capped"),
        "indicator_pct" => ("Indicador %", "Indicator %"),
        "delivery_rate_pct" => ("Entrega %", "Delivery %"),
        "segments" => ("Segmentos SMS", "SMS segments"),
        "spent" => ("Gasto", "Spent"),
        "no_price" => ("Sin precio", "No price"),
        "total" => ("Total", "Total"),
        _ => ("", ""),
    };
    match lang {
        Language::Es => es,
        Language::En => en,
    }
}

/// An aligned table for the terminal, with a totals row.
pub fn to_table(report: &Report, lang: Language) -> String {
    let with_name = report.keys.contains(&GroupKey::Activity);
    let mut header: Vec<String> = report
        .keys
        .iter()
        .map(|k| title(k.name(), lang).to_string())
        .collect();
    if with_name {
        header.push(title("activity_name", lang).into());
    }
    header.extend(MEASURES.iter().map(|m| match (*m, &report.currency) {
        ("spent", Some(currency)) => format!("{} {currency}", title(m, lang)),
        _ => title(m, lang).to_string(),
    }));
    let numbers = |m: &Measures| -> Vec<String> {
        vec![
            m.programmed.map(thousands).unwrap_or_else(|| "—".into()),
            thousands(m.sent),
            thousands(m.delivered),
            thousands(m.failed),
            thousands(m.suppressed),
            thousands(m.expired),
            thousands(m.capped),
            m.indicator_pct()
                .map(|p| format!("{p:.1}"))
                .unwrap_or_else(|| "—".into()),
            m.delivery_rate_pct()
                .map(|p| format!("{p:.1}"))
                .unwrap_or_else(|| "—".into()),
            thousands(m.segments),
            m.spent.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
            thousands(m.no_price),
        ]
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for row in &report.rows {
        let mut cells: Vec<String> = row
            .key
            .iter()
            .map(|v| v.clone().unwrap_or_else(|| "—".into()))
            .collect();
        if with_name {
            cells.push(row.activity_name.clone().unwrap_or_default());
        }
        cells.extend(numbers(&row.measures));
        rows.push(cells);
    }
    let mut total: Vec<String> = vec![String::new(); report.keys.len() + usize::from(with_name)];
    if let Some(first) = total.first_mut() {
        *first = title("total", lang).into();
    }
    total.extend(numbers(&report.total));
    let key_columns = report.keys.len() + usize::from(with_name);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .chain(std::iter::once(&total))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i].saturating_sub(c.chars().count());
                if i < key_columns {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(&header)];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.extend(rows.iter().map(|r| line(r)));
    out.push(line(&total));
    out.join("\n")
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

/// The ledger's columns, in the order CSV writes them.
const LEDGER_COLUMNS: [&str; 18] = [
    "message_id",
    "run_id",
    "campaign",
    "contact_id",
    "channel",
    "address",
    "entity",
    "country",
    "language",
    "status",
    "attempts",
    "segments",
    "last_code",
    "last_reason",
    "created_at",
    "sent_at",
    "delivered_at",
    "finished_at",
];

/// How the ledger is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFormat {
    /// With a byte-order mark, so that spreadsheets read it as UTF-8.
    Csv,
    /// One array.
    Json,
}

/// Writes the ledger (one row per message, addresses masked) as its pages
/// arrive, so that exporting a campaign of any size takes the memory of a page.
enum LedgerWriter<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json { out: W, first: bool },
}

impl<W: Write> LedgerWriter<W> {
    fn start(format: LedgerFormat, mut out: W) -> io::Result<LedgerWriter<W>> {
        Ok(match format {
            LedgerFormat::Csv => {
                out.write_all(b"\xEF\xBB\xBF")?;
                let mut w = csv::Writer::from_writer(out);
                w.write_record(LEDGER_COLUMNS).map_err(io_error)?;
                LedgerWriter::Csv(Box::new(w))
            }
            LedgerFormat::Json => {
                out.write_all(b"[")?;
                LedgerWriter::Json { out, first: true }
            }
        })
    }

    fn write(&mut self, rows: &[LedgerRow]) -> io::Result<()> {
        match self {
            LedgerWriter::Csv(w) => {
                for r in rows {
                    w.write_record([
                        r.message_id.to_string(),
                        r.run_id.to_string(),
                        inert_cell(&r.campaign),
                        inert_cell(&r.contact_id),
                        r.channel.to_string(),
                        inert_cell(&mask_address(&r.address)),
                        r.entity.clone().unwrap_or_default(),
                        r.country.clone().unwrap_or_default(),
                        r.language.clone(),
                        r.status.to_string(),
                        r.attempts.to_string(),
                        r.segments.map(|s| s.to_string()).unwrap_or_default(),
                        inert_cell(r.last_code.as_deref().unwrap_or("")),
                        inert_cell(r.last_reason.as_deref().unwrap_or("")),
                        time(Some(r.created_at)),
                        time(r.sent_at),
                        time(r.delivered_at),
                        time(r.finished_at),
                    ])
                    .map_err(io_error)?;
                }
            }
            LedgerWriter::Json { out, first } => {
                for r in rows {
                    if !std::mem::take(first) {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *out, &ledger_json_row(r))?;
                }
            }
        }
        Ok(())
    }

    /// Ends the export and hands back the output, flushed.
    fn finish(self) -> io::Result<W> {
        match self {
            LedgerWriter::Csv(w) => {
                let mut out = w.into_inner().map_err(|e| e.into_error())?;
                out.flush()?;
                Ok(out)
            }
            LedgerWriter::Json { mut out, .. } => {
                out.write_all(b"]\n")?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

/// The output's own error, so that a closed pipe is still seen as one.
fn io_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Messages read from the database per page of a ledger export.
pub const LEDGER_PAGE: i64 = 5_000;

/// A ledger export stopped: the database could not be read, or the output
/// not written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Write(#[from] io::Error),
}

/// Writes a campaign's ledger (only `statuses`, if any) to `out`, reading
/// `page` messages at a time; returns the number of rows and the output.
pub async fn export_ledger<W: Write>(
    store: &dyn Store,
    campaign_id: i64,
    statuses: &[String],
    format: LedgerFormat,
    out: W,
    page: i64,
) -> Result<(u64, W), LedgerError> {
    let mut writer = LedgerWriter::start(format, out)?;
    // Pages walk the outbox by id; the first starts at the campaign's first
    // message instead of reading every older campaign's.
    let Some(first) = store.first_message_id(campaign_id).await? else {
        return Ok((0, writer.finish()?));
    };
    let mut after = first - 1;
    let mut rows = 0;
    loop {
        let batch = store
            .message_ledger(campaign_id, statuses, after, page)
            .await?;
        writer.write(&batch)?;
        rows += batch.len() as u64;
        match batch.last() {
            Some(last) if batch.len() as i64 == page => after = last.message_id,
            _ => break,
        }
    }
    Ok((rows, writer.finish()?))
}

fn ledger_json_row(r: &LedgerRow) -> Value {
    serde_json::json!({
        "message_id": r.message_id,
        "run_id": r.run_id,
        "campaign": r.campaign,
        "contact_id": r.contact_id,
        "channel": r.channel,
        "address": mask_address(&r.address),
        "entity": r.entity,
        "country": r.country,
        "language": r.language,
        "status": r.status,
        "attempts": r.attempts,
        "segments": r.segments,
        "last_code": r.last_code,
        "last_reason": r.last_reason,
        "created_at": time(Some(r.created_at)),
        "sent_at": r.sent_at.map(|t| time(Some(t))),
        "delivered_at": r.delivered_at.map(|t| time(Some(t))),
        "finished_at": r.finished_at.map(|t| time(Some(t))),
    })
}
