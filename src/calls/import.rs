//! `aviso calls import`: the call centre's results as call attempts of the
//! programme's calls activity (its indicator then fills in), and the outcomes
//! that must stop messages as suppressions, as `aviso suppress import-calls`
//! does. Every row is imported or rejected with its line and reason; a row
//! imported before is recorded once.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;

use super::{classify_call, suppressions_for, CallAttempt, CallOutcome};
use crate::campaigns::Activity;
use crate::contacts::CrlfAsLf;
use crate::domain::{fold, ChannelKind, Country, PhoneNumber};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CallsImportError {
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error(
        "activity {0} is for {1} messages, which aviso counts itself: record calls against an activity without a channel (e.g. LLAMADAS)"
    )]
    NotCalls(String, ChannelKind),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did: `imported + rejected = read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallsImport {
    pub read: u64,
    pub imported: u64,
    /// Of `imported`, the attempts recorded now (the others came before).
    pub new_attempts: u64,
    pub already_recorded: u64,
    pub rejected: u64,
    pub suppressions_added: u64,
    /// (line, reason) of every rejected row.
    #[serde(skip)]
    pub rejections: Vec<(u64, String)>,
}

/// Column names the call centre may use, folded (lower case, no accents).
const CONTACT: &[&str] = &["id_contacto", "contact_id", "id"];
const PHONE: &[&str] = &["telefono", "phone", "numero", "number"];
const LADA: &[&str] = &["lada", "country_code"];
const DATE: &[&str] = &["fecha", "date"];
const OUTCOME: &[&str] = &["resultado", "outcome", "estatus", "status"];

/// Imports `file` against `activity`; numbers without a country code are read
/// in `region`.
pub async fn import_results(
    store: &dyn Store,
    file: &Path,
    activity: &Activity,
    region: Option<Country>,
    now: i64,
) -> Result<CallsImport, CallsImportError> {
    let shown = file.display().to_string();
    let fail = |reason: String| CallsImportError::File {
        file: shown.clone(),
        reason,
    };
    if let Some(channel) = activity.channel {
        return Err(CallsImportError::NotCalls(activity.code.clone(), channel));
    }
    let reader = std::fs::File::open(file).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(CrlfAsLf::new(std::io::BufReader::new(reader)));
    let headers = csv
        .headers()
        .map_err(|e| fail(format!("no header row: {e}")))?
        .clone();
    let column = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.contains(&fold(h.trim_start_matches('\u{feff}')).as_str()))
    };
    let (contact_col, phone_col, lada_col) = (column(CONTACT), column(PHONE), column(LADA));
    let date_col = column(DATE)
        .ok_or_else(|| fail("required column \"fecha\" (or \"date\") is missing".into()))?;
    let outcome_col = column(OUTCOME)
        .ok_or_else(|| fail("required column \"resultado\" (or \"outcome\") is missing".into()))?;
    if contact_col.is_none() && phone_col.is_none() {
        return Err(fail(
            "say who was called: a column \"id_contacto\" (or \"contact_id\") or \"telefono\" (or \"phone\")"
                .into(),
        ));
    }

    let source = format!("calls import:{shown}");
    let mut report = CallsImport::default();
    let mut attempts = Vec::new();
    let mut suppressions = Vec::new();
    let mut repeats: HashMap<String, u32> = HashMap::new();
    for record in csv.records() {
        let record = record.map_err(|e| fail(format!("unreadable row: {e}")))?;
        report.read += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
        let row = read_row(
            store,
            cell(contact_col),
            unguarded(cell(phone_col)),
            cell(lada_col),
            cell(Some(date_col)),
            cell(Some(outcome_col)),
            region,
        )
        .await?;
        let (who, phone, date, label, outcome) = match row {
            Ok(row) => row,
            Err(reason) => {
                report.rejected += 1;
                report.rejections.push((line, reason));
                continue;
            }
        };
        let identity = match &who {
            Some(id) => format!("contact:{id}"),
            None => format!("phone:{phone}"),
        };
        let base = format!("{identity}|{date}|{}", fold(label));
        let n = repeats.entry(base.clone()).or_default();
        *n += 1;
        attempts.push(CallAttempt {
            key: format!("{base}|{n}"),
            contact_id: who,
            phone: Some(phone.clone()),
            date,
            outcome: label.to_string(),
        });
        if outcome != CallOutcome::Neutral {
            suppressions.extend(suppressions_for(store, outcome, &phone, &source, now).await?);
        }
        report.imported += 1;
    }
    report.new_attempts = store
        .record_call_attempts(activity.id, &attempts, &source, now)
        .await?;
    report.already_recorded = report.imported - report.new_attempts;
    report.suppressions_added = store.add_suppressions(&suppressions).await?;
    Ok(report)
}

/// A cell without the quote a spreadsheet export puts before `+`, `=`, `-`
/// and `@` (see `report::inert_cell`): the work list comes back that way.
fn unguarded(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => cell,
    }
}

type Row<'a> = (Option<String>, PhoneNumber, NaiveDate, &'a str, CallOutcome);

/// One row's contact, phone, date and outcome, or why it is rejected.
async fn read_row<'a>(
    store: &dyn Store,
    contact_id: &str,
    phone: &str,
    lada: &str,
    date: &str,
    label: &'a str,
    region: Option<Country>,
) -> Result<Result<Row<'a>, String>, StoreError> {
    let Some(outcome) = classify_call(label) else {
        return Ok(Err(if label.is_empty() {
            "no outcome (resultado): fill it in, or leave the row out if the call was not made"
                .into()
        } else {
            format!("unknown outcome {label:?}: use one the call centre's list names (e.g. Contestó, No contestó, Número equivocado, Ciudadano fallecido)")
        }));
    };
    let Some(date) = ["%Y-%m-%d", "%d/%m/%Y"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(date, f).ok())
    else {
        return Ok(Err(format!(
            "date (fecha) {date:?} is not a date like 2021-10-15"
        )));
    };
    let written = (!phone.is_empty()).then(|| PhoneNumber::from_parts(lada, phone, region));
    if contact_id.is_empty() {
        return Ok(match written {
            Some(Ok(phone)) => Ok((None, phone, date, label, outcome)),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no contact id (id_contacto) and no phone (telefono)".into()),
        });
    }
    let Some(record) = store.contact(contact_id).await? else {
        return Ok(Err(format!(
            "contact {contact_id:?} is not in the database"
        )));
    };
    let phone = match (written, record.contact.phone) {
        (Some(Ok(phone)), _) | (_, Some(phone)) => phone,
        (Some(Err(e)), None) => return Ok(Err(e.to_string())),
        (None, None) => {
            return Ok(Err(format!(
                "contact {contact_id:?} has no phone, and the row gives none"
            )))
        }
    };
    Ok(Ok((
        Some(contact_id.to_string()),
        phone,
        date,
        label,
        outcome,
    )))
}
