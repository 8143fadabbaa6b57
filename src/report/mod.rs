//! Reports and exports: the programme's indicators in every format people
//! use, and the message ledger. Everything aviso writes for a spreadsheet goes
//! through [`inert_cell`], because contact and campaign names are typed by
//! other people.

mod chart;
mod export;
mod html;
mod indicators;
mod xlsx;

pub use chart::to_svg;
pub use export::{
    export_ledger, format_pct, title, to_csv, to_json, to_table, LedgerError, LedgerFormat,
    LEDGER_PAGE,
};
pub use html::to_html;
pub use indicators::{indicators, GroupKey, IndicatorRow, Measures, Report};
pub use xlsx::to_xlsx;

/// A report could not be written in the format asked for.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExportError(pub String);

/// `12345` → `12,345`: counts people read.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A time in a zone, as people read it: `2021-09-01 10:00`.
pub fn local_time(ms: i64, zone: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&zone)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// `part / whole × 100`, or nothing when there is no whole to divide by.
pub fn percentage(part: i64, whole: Option<i64>) -> Option<f64> {
    match whole {
        Some(w) if w > 0 => Some(part as f64 * 100.0 / w as f64),
        _ => None,
    }
}

/// Makes a cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or
/// a tab/CR that some programs strip first) read as text, by prefixing `'`
/// (OWASP's advice for CSV injection).
pub fn inert_cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text() {
        assert_eq!(inert_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert_cell("+1 213"), "'+1 213");
        assert_eq!(inert_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert_cell("Rosa"), "Rosa");
        assert_eq!(inert_cell(""), "");
    }
}
