//! The indicators as an SVG bar chart.

use super::indicators::Report;
use super::ExportError;
use crate::domain::Language;

/// Bars of sent against programmed, per activity (and per month when grouped by month).
pub fn to_svg(report: &Report, lang: Language) -> Result<String, ExportError> {
    let _ = (report, lang);
    Err(ExportError("svg export is not available yet".into()))
}
