//! The indicators as one self-contained HTML page: table and chart.

use super::indicators::Report;
use super::ExportError;
use crate::domain::Language;

pub fn to_html(report: &Report, lang: Language) -> Result<String, ExportError> {
    let _ = (report, lang);
    Err(ExportError("html export is not available yet".into()))
}
