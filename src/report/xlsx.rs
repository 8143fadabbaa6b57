//! The indicators as an Excel workbook.
//!
//! One sheet per grouping, each with a bold, frozen header row in the report's
//! language, the group keys (and the activity's name when grouped by
//! activity), then the measures: counts as integers, percentages as numbers
//! with a percent format, nothing where there is no value (a programmed total
//! the programme does not split that way is left empty, never invented), and a
//! bold totals row holding values, not formulas, so every reader sees them.
//! Text typed by other people (activity names, keys) that a spreadsheet would
//! run as a formula is written as a string with a quote prefix.

use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};

use super::export::MEASURES;
use super::indicators::{GroupKey, Measures, Report};
use super::{title, ExportError};
use crate::cost::Money;
use crate::domain::Language;

/// Money with thousands and at least two decimals (prices go to millionths).
const MONEY_FORMAT: &str = "#,##0.00####";

/// A measure's value as a sheet shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
    Count(i64),
    /// A percentage as computed (e.g. `95.3` for 95.3 %), unrounded.
    Pct(f64),
    Money(Money),
    Empty,
}

/// The measures of `m` in [`MEASURES`] order.
pub(super) fn measure_values(m: &Measures) -> [Value; MEASURES.len()] {
    let count = |n: i64| Value::Count(n);
    [
        m.programmed.map(count).unwrap_or(Value::Empty),
        count(m.sent),
        count(m.delivered),
        count(m.failed),
        count(m.suppressed),
        count(m.expired),
        count(m.capped),
        m.indicator_pct().map(Value::Pct).unwrap_or(Value::Empty),
        m.delivery_rate_pct()
            .map(Value::Pct)
            .unwrap_or(Value::Empty),
        count(m.segments),
        m.spent.map(Value::Money).unwrap_or(Value::Empty),
        count(m.no_price),
    ]
}

/// Whether rows of `report` carry the activity's name as a column.
pub(super) fn with_name(report: &Report) -> bool {
    report.keys.contains(&GroupKey::Activity)
}

/// The column titles of a report in `lang`: keys, the activity's name, measures.
pub(super) fn header(report: &Report, lang: Language) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = report.keys.iter().map(|k| title(k.name(), lang)).collect();
    if with_name(report) {
        out.push(title("activity_name", lang));
    }
    out.extend(MEASURES.iter().map(|m| title(m, lang)));
    out
}

/// The text cells of a row: its key values, then the activity's name if shown.
pub(super) fn text_cells(
    report: &Report,
    row: &super::indicators::IndicatorRow,
) -> Vec<Option<String>> {
    let mut out = row.key.clone();
    if with_name(report) {
        out.push(row.activity_name.clone());
    }
    out
}

/// A sheet name Excel accepts: at most 31 characters, none of `[]:*?/\`, not
/// starting or ending with an apostrophe, not blank, unique in `taken`
/// (compared without regard to case, as Excel does).
fn sheet_name(wanted: &str, taken: &[String]) -> String {
    let clean: String = wanted
        .chars()
        .map(|c| {
            if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim_matches('\'').trim().to_string();
    let clean = if clean.is_empty() || clean.eq_ignore_ascii_case("history") {
        "hoja".to_string()
    } else {
        clean
    };
    let fits = |s: &str, max: usize| s.chars().take(max).collect::<String>();
    let is_taken = |s: &str| taken.iter().any(|t| t.to_lowercase() == s.to_lowercase());
    let mut name = fits(&clean, 31);
    let mut n = 2;
    while is_taken(&name) {
        let suffix = format!(" ({n})");
        name = format!("{}{suffix}", fits(&clean, 31 - suffix.chars().count()));
        n += 1;
    }
    name
}

/// `activity,month` → `actividad-mes` (es) / `activity-month` (en).
fn grouping_name(report: &Report, lang: Language) -> String {
    report
        .keys
        .iter()
        .map(|k| title(k.name(), lang).to_lowercase())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether a spreadsheet would run this text as a formula (see [`super::inert_cell`]).
fn runs_as_formula(text: &str) -> bool {
    matches!(
        text.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
    )
}

struct Formats {
    header: Format,
    text: Format,
    inert: Format,
    count: Format,
    pct: Format,
    money: Format,
    total_text: Format,
    total_inert: Format,
    total_count: Format,
    total_pct: Format,
    total_money: Format,
    total_blank: Format,
}

impl Formats {
    fn new() -> Formats {
        let total = || Format::new().set_bold().set_border_top(FormatBorder::Thin);
        Formats {
            header: Format::new()
                .set_bold()
                .set_text_wrap()
                .set_align(FormatAlign::Center)
                .set_border_bottom(FormatBorder::Thin),
            text: Format::new(),
            inert: Format::new().set_quote_prefix(),
            count: Format::new().set_num_format("#,##0"),
            pct: Format::new().set_num_format("0.0%"),
            money: Format::new().set_num_format(MONEY_FORMAT),
            total_text: total(),
            total_inert: total().set_quote_prefix(),
            total_count: total().set_num_format("#,##0"),
            total_pct: total().set_num_format("0.0%"),
            total_money: total().set_num_format(MONEY_FORMAT),
            total_blank: total(),
        }
    }
}

/// One sheet per grouping: `main`, then each of `singles` (the same report
/// grouped by one key at a time).
pub fn to_xlsx(main: &Report, singles: &[Report], lang: Language) -> Result<Vec<u8>, ExportError> {
    let err = |e: XlsxError| ExportError(format!("cannot write the workbook: {e}"));
    let formats = Formats::new();
    let mut workbook = Workbook::new();
    let mut taken: Vec<String> = Vec::new();
    for report in std::iter::once(main).chain(singles) {
        let name = sheet_name(&grouping_name(report, lang), &taken);
        let sheet = workbook.add_worksheet();
        sheet.set_name(&name).map_err(err)?;
        taken.push(name);
        write_sheet(sheet, report, lang, &formats).map_err(err)?;
    }
    workbook.save_to_buffer().map_err(err)
}

fn write_sheet(
    sheet: &mut Worksheet,
    report: &Report,
    lang: Language,
    f: &Formats,
) -> Result<(), XlsxError> {
    let header = header(report, lang);
    let text_columns = report.keys.len() + usize::from(with_name(report));
    // Characters shown per column, to size it.
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count() + 1).collect();
    let mut fit = |col: usize, shown: usize| widths[col] = widths[col].max(shown);

    for (col, h) in header.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, *h, &f.header)?;
    }
    let shown_len = |v: &Value| match v {
        Value::Count(n) => super::thousands(*n).chars().count(),
        Value::Pct(p) => format!("{:.1}%", p).chars().count(),
        Value::Money(m) => m.to_string().chars().count() + 2,
        Value::Empty => 0,
    };
    let mut r: u32 = 1;
    for row in &report.rows {
        for (col, text) in text_cells(report, row).iter().enumerate() {
            if let Some(text) = text {
                let format = if runs_as_formula(text) {
                    &f.inert
                } else {
                    &f.text
                };
                sheet.write_string_with_format(r, col as u16, text, format)?;
                fit(col, text.chars().count());
            }
        }
        for (i, value) in measure_values(&row.measures).iter().enumerate() {
            let col = (text_columns + i) as u16;
            match value {
                Value::Count(n) => {
                    sheet.write_number_with_format(r, col, *n as f64, &f.count)?;
                }
                Value::Pct(p) => {
                    sheet.write_number_with_format(r, col, p / 100.0, &f.pct)?;
                }
                Value::Money(m) => {
                    sheet.write_number_with_format(r, col, m.as_f64(), &f.money)?;
                }
                Value::Empty => {}
            }
            fit(text_columns + i, shown_len(value));
        }
        r += 1;
    }

    // Totals: values computed here, not formulas.
    let total_title = title("total", lang);
    for col in 0..text_columns {
        if col == 0 {
            let format = if runs_as_formula(total_title) {
                &f.total_inert
            } else {
                &f.total_text
            };
            sheet.write_string_with_format(r, 0, total_title, format)?;
            fit(0, total_title.chars().count());
        } else {
            sheet.write_blank(r, col as u16, &f.total_blank)?;
        }
    }
    for (i, value) in measure_values(&report.total).iter().enumerate() {
        let col = (text_columns + i) as u16;
        match value {
            Value::Count(n) => sheet.write_number_with_format(r, col, *n as f64, &f.total_count)?,
            Value::Pct(p) => sheet.write_number_with_format(r, col, p / 100.0, &f.total_pct)?,
            Value::Money(m) => {
                sheet.write_number_with_format(r, col, m.as_f64(), &f.total_money)?
            }
            Value::Empty => sheet.write_blank(r, col, &f.total_blank)?,
        };
        fit(text_columns + i, shown_len(value) + 1);
    }

    sheet.set_freeze_panes(1, 0)?;
    for (col, chars) in widths.iter().enumerate() {
        // Excel's width unit is about one digit; a little room for padding and bold.
        let width = (*chars as f64 + 2.0).clamp(8.0, 60.0);
        sheet.set_column_width(col as u16, width)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_valid_and_unique() {
        assert_eq!(sheet_name("actividad-mes", &[]), "actividad-mes");
        assert_eq!(sheet_name("a/b:c[d]*?\\", &[]), "a_b_c_d____");
        let long = "x".repeat(40);
        assert_eq!(sheet_name(&long, &[]).chars().count(), 31);
        let taken = vec!["Mes".to_string()];
        assert_eq!(sheet_name("mes", &taken), "mes (2)");
        let taken = vec![long.chars().take(31).collect::<String>()];
        let again = sheet_name(&long, &taken);
        assert_eq!(again.chars().count(), 31);
        assert!(again.ends_with(" (2)"));
        assert_eq!(sheet_name("''", &[]), "hoja");
    }

    #[test]
    fn formulas_are_recognised() {
        for s in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx"] {
            assert!(runs_as_formula(s), "{s}");
        }
        assert!(!runs_as_formula("SMS-REG"));
        assert!(!runs_as_formula(""));
    }
}
