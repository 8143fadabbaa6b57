//! Reports and exports. Everything aviso writes for a spreadsheet goes through
//! [`inert_cell`], because contact and campaign names are typed by other people.

use serde::Serialize;

use crate::store::{Store, StoreResult};

/// One line of the indicator table: what the programme asked for and what went out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorRow {
    pub activity: String,
    pub name: String,
    pub programmed: Option<i64>,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub expired: i64,
    /// sent / programmed × 100.
    pub indicator_pct: Option<f64>,
    /// delivered / sent × 100.
    pub delivery_rate_pct: Option<f64>,
}

/// Indicators per activity, counted from the message log. "Sent" counts every
/// message the provider accepted, including those since delivered.
pub async fn indicators_by_activity(store: &dyn Store) -> StoreResult<Vec<IndicatorRow>> {
    let campaigns = store.campaigns().await?;
    let mut rows = Vec::new();
    for activity in store.activities().await? {
        let mut row = IndicatorRow {
            activity: activity.code.clone(),
            name: activity.name.clone(),
            programmed: Some(activity.programmed),
            sent: 0,
            delivered: 0,
            failed: 0,
            suppressed: 0,
            expired: 0,
            indicator_pct: None,
            delivery_rate_pct: None,
        };
        for c in campaigns.iter().filter(|c| c.activity_id == activity.id) {
            let (counts, _) = store.status_counts(c.id).await?;
            row.sent += counts.sent + counts.delivered;
            row.delivered += counts.delivered;
            row.failed += counts.failed;
            row.suppressed += counts.suppressed;
            row.expired += counts.expired;
        }
        row.indicator_pct = percentage(row.sent, row.programmed);
        row.delivery_rate_pct = percentage(row.delivered, Some(row.sent));
        rows.push(row);
    }
    Ok(rows)
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
