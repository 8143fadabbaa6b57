//! `aviso contacts import`: reads a registry export or the OSC directory, keeps
//! every row accounted for (imported + updated + unchanged + rejected = read),
//! and writes the rejected rows, with line and reason, to a CSV people can fix.
//!
//! The file is streamed: one thread reads and checks rows, the caller's task
//! writes batches to the store, so memory stays bounded whatever the file size.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::Contact;
use crate::domain::{
    fold, ContactKind, Country, Credential, EmailAddress, Entity, Invalid, Language, Modality,
    PhoneNumber, Population,
};
use crate::store::{Store, StoreError};

mod check;
mod reading;
mod rejects;
mod seen_ids;

use check::check_rows;
pub(crate) use reading::CrlfAsLf;
use reading::{choose_encoding, csv_reader, decoded, read_layout};
use rejects::RejectsWriter;
use seen_ids::SeenIds;

/// Rows checked and written together: big enough to amortise a transaction,
/// small enough to keep memory flat.
const BATCH: usize = 10000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// Windows-1252, the superset of Latin-1 that Excel on Windows writes.
    Latin1,
}

impl Encoding {
    pub fn parse(s: &str) -> Result<Encoding, Invalid> {
        match fold(s).replace(['-', '_'], "").as_str() {
            "utf8" => Ok(Encoding::Utf8),
            "latin1" | "iso88591" | "windows1252" | "cp1252" => Ok(Encoding::Latin1),
            _ => Err(Invalid::new(format!(
                "unknown encoding {s:?}: use utf8 or latin1"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Latin1 => "windows-1252",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub list: String,
    /// Where rejected rows go; by default `<file name>.rejects.csv` in the
    /// current directory (the input's directory may not be ours to write).
    pub rejects: Option<PathBuf>,
    pub dry_run: bool,
    /// Forces an encoding instead of detecting it.
    pub encoding: Option<Encoding>,
    pub progress: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub read: u64,
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub rejects_file: Option<String>,
    pub kind: String,
    pub encoding: String,
    pub ignored_columns: Vec<String>,
    pub dry_run: bool,
}

/// One rejected row: where it is, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub id: String,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read the file: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: required column {column:?} is missing (columns found: {found})")]
    MissingColumn {
        path: String,
        column: String,
        found: String,
    },
    #[error("{path}: {detail}")]
    Encoding { path: String, detail: String },
    #[error("{path}, line {line}: {detail}")]
    Csv {
        path: String,
        line: u64,
        detail: String,
    },
    #[error("{path}: cannot write the rejects file: {source}")]
    Rejects {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The fields aviso understands, whatever the export calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Id,
    FirstName,
    LastName,
    Organization,
    Entity,
    Country,
    Email,
    CallingCode,
    Phone,
    Language,
    Credential,
    Population,
    Modality,
}

impl Field {
    /// Spanish headers of the registry export and their English aliases.
    fn from_header(header: &str) -> Option<Field> {
        let key = fold(header).replace([' ', '-'], "_");
        Some(match key.as_str() {
            "id_contacto" | "id" | "contact_id" | "id_contact" => Field::Id,
            "nombre" | "first_name" | "firstname" | "name" | "nombres" => Field::FirstName,
            "apellidos" | "last_name" | "lastname" | "surname" | "apellido" => Field::LastName,
            "organizacion" | "organization" | "organisation" | "osc" => Field::Organization,
            "entidad" | "entity" | "state" | "estado" => Field::Entity,
            "pais" | "country" | "pais_residencia" => Field::Country,
            "email" | "e_mail" | "correo" | "correo_electronico" | "mail" => Field::Email,
            "lada" | "country_code" | "calling_code" | "codigo_pais" => Field::CallingCode,
            "telefono" | "phone" | "celular" | "mobile" | "phone_number" | "movil" => Field::Phone,
            "idioma" | "language" | "lang" => Field::Language,
            "tipo_credencial" | "credential" | "credencial" => Field::Credential,
            "poblacion" | "population" => Field::Population,
            "modalidad" | "modality" | "modalidad_voto" => Field::Modality,
            _ => return None,
        })
    }

    /// The column name as the registry export spells it, for messages.
    fn column(self) -> &'static str {
        match self {
            Field::Id => "id_contacto",
            Field::FirstName => "nombre",
            Field::LastName => "apellidos",
            Field::Organization => "organizacion",
            Field::Entity => "entidad",
            Field::Country => "pais",
            Field::Email => "email",
            Field::CallingCode => "lada",
            Field::Phone => "telefono",
            Field::Language => "idioma",
            Field::Credential => "tipo_credencial",
            Field::Population => "poblacion",
            Field::Modality => "modalidad",
        }
    }
}

/// Where each known field sits in the file, and what kind of contacts it holds.
struct Layout {
    kind: ContactKind,
    columns: Columns,
    width: usize,
}

/// Field → column index: read about fifteen times a row, so an array indexed
/// by the field rather than a hashed map.
#[derive(Default)]
struct Columns([Option<usize>; FIELDS]);

const FIELDS: usize = Field::Modality as usize + 1;

impl Columns {
    fn get(&self, field: Field) -> Option<usize> {
        self.0[field as usize]
    }

    fn contains(&self, field: Field) -> bool {
        self.get(field).is_some()
    }

    fn insert(&mut self, field: Field, column: usize) {
        self.0[field as usize] = Some(column);
    }
}

impl Layout {
    fn from_headers(
        path: &str,
        headers: &csv::StringRecord,
    ) -> Result<(Layout, Vec<String>), ImportError> {
        let mut columns = Columns::default();
        let mut ignored = Vec::new();
        for (i, header) in headers.iter().enumerate() {
            match Field::from_header(header) {
                Some(field) if !columns.contains(field) => {
                    columns.insert(field, i);
                }
                _ if header.trim().is_empty() => {}
                _ => ignored.push(header.trim().to_string()),
            }
        }
        let organizations = columns.contains(Field::Organization) && !columns.contains(Field::Id);
        let (kind, required): (_, &[Field]) = if organizations {
            (ContactKind::Organization, &[Field::Organization])
        } else {
            (
                ContactKind::Citizen,
                &[Field::Id, Field::FirstName, Field::Entity, Field::Country],
            )
        };
        let found = || {
            headers
                .iter()
                .map(|h| h.trim())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for field in required {
            if !columns.contains(*field) {
                return Err(ImportError::MissingColumn {
                    path: path.to_string(),
                    column: field.column().to_string(),
                    found: found(),
                });
            }
        }
        if !columns.contains(Field::Email) && !columns.contains(Field::Phone) {
            return Err(ImportError::MissingColumn {
                path: path.to_string(),
                column: "email or telefono".to_string(),
                found: found(),
            });
        }
        let layout = Layout {
            kind,
            columns,
            width: headers.len(),
        };
        Ok((layout, ignored))
    }

    fn get<'r>(&self, record: &'r csv::StringRecord, field: Field) -> &'r str {
        self.columns
            .get(field)
            .and_then(|i| record.get(i))
            .map(str::trim)
            .unwrap_or("")
    }

    /// The row's key: `id_contacto`, or for an organisation without one, its name.
    fn row_id(&self, record: &csv::StringRecord) -> String {
        match (self.kind, self.get(record, Field::Id)) {
            (ContactKind::Organization, "") => {
                organization_id(&clean_text(self.get(record, Field::Organization)))
            }
            (_, id) => id.to_string(),
        }
    }

    /// Checks one row. All problems are reported, not only the first, so a
    /// person fixing the file fixes it once.
    fn parse(&self, record: &csv::StringRecord) -> Result<Contact, Vec<(Field, String)>> {
        let mut problems: Vec<(Field, String)> = Vec::new();
        let mut check = |field: Field, result: Result<(), Invalid>| {
            if let Err(e) = result {
                problems.push((field, e.0));
            }
        };
        let text = |field: Field| clean_text(self.get(record, field));
        let optional = |field: Field| Some(self.get(record, field)).filter(|v| !v.is_empty());

        let id = self.row_id(record);
        let (first_name, last_name) = match self.kind {
            ContactKind::Organization => {
                let name = text(Field::Organization);
                check(Field::Organization, nonempty(&name, "organisation name"));
                (name, None)
            }
            ContactKind::Citizen => {
                check(Field::Id, nonempty(&id, "id_contacto"));
                let first = text(Field::FirstName);
                check(Field::FirstName, nonempty(&first, "name"));
                let last = Some(text(Field::LastName)).filter(|l| !l.is_empty());
                (first, last)
            }
        };
        check(Field::Id, max_len(&id, 200, "id"));
        check(Field::FirstName, max_len(&first_name, 200, "name"));

        let mut parsed = |field: Field, required: bool| -> Option<&str> {
            match optional(field) {
                None if required => {
                    problems.push((field, format!("{} is empty", field.column())));
                    None
                }
                value => value,
            }
        };
        let entity_text = parsed(Field::Entity, self.kind == ContactKind::Citizen);
        let country_text = parsed(Field::Country, self.kind == ContactKind::Citizen);

        let entity = keep(&mut problems, Field::Entity, entity_text, Entity::parse);
        let country = keep(&mut problems, Field::Country, country_text, Country::parse);
        let email = keep(
            &mut problems,
            Field::Email,
            optional(Field::Email),
            EmailAddress::parse,
        );
        let phone = keep(
            &mut problems,
            Field::Phone,
            optional(Field::Phone),
            |number| PhoneNumber::from_parts(self.get(record, Field::CallingCode), number, country),
        );
        let language = keep(
            &mut problems,
            Field::Language,
            optional(Field::Language),
            Language::parse,
        )
        .unwrap_or_default();
        let credential = keep(
            &mut problems,
            Field::Credential,
            optional(Field::Credential),
            Credential::parse,
        );
        let population = keep(
            &mut problems,
            Field::Population,
            optional(Field::Population),
            Population::parse,
        );
        let modality = keep(
            &mut problems,
            Field::Modality,
            optional(Field::Modality),
            Modality::parse,
        );

        let has_email = optional(Field::Email).is_some();
        let has_phone = optional(Field::Phone).is_some();
        if !has_email && !has_phone {
            problems.push((
                Field::Email,
                "no e-mail and no phone: nothing to send to".into(),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Contact {
            id,
            kind: self.kind,
            first_name: Some(first_name),
            last_name,
            entity,
            country,
            email,
            phone,
            language,
            credential,
            population,
            modality,
        })
    }
}

/// Parses an optional field, recording a problem if it is present but wrong.
fn keep<T>(
    problems: &mut Vec<(Field, String)>,
    field: Field,
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, Invalid>,
) -> Option<T> {
    match parse(text?) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push((field, e.0));
            None
        }
    }
}

fn nonempty(value: &str, what: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        Err(Invalid::new(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

fn max_len(value: &str, max: usize, what: &str) -> Result<(), Invalid> {
    if value.chars().count() > max {
        Err(Invalid::new(format!(
            "{what} is longer than {max} characters"
        )))
    } else {
        Ok(())
    }
}

/// Names as people typed them, with runs of spaces, tabs and line breaks made
/// one space: a line break in a name must never reach an e-mail header.
fn clean_text(s: &str) -> String {
    // Most names need nothing: one pass to see that, and one copy.
    let mut after_space = true;
    let clean = s.chars().all(|c| {
        let space = c == ' ';
        let ok = (space && !after_space) || !(c.is_whitespace() || c.is_control());
        after_space = space;
        ok
    });
    if clean && !after_space {
        return s.to_string();
    }
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The OSC directory has no key column: an organisation is known by its name.
fn organization_id(name: &str) -> String {
    let slug: String = fold(name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let slug: Vec<&str> = slug.split('-').filter(|p| !p.is_empty()).collect();
    format!("OSC-{}", slug.join("-"))
}

/// What the checking thread hands to the writer.
enum Batch {
    Rows(Vec<Contact>),
    Done(Result<CheckTotals, ImportError>),
}

#[derive(Default)]
struct CheckTotals {
    read: u64,
    rejected: u64,
}

pub async fn import_file(
    store: &dyn Store,
    path: &Path,
    options: &ImportOptions,
    now: i64,
) -> Result<ImportSummary, ImportError> {
    let shown = path.display().to_string();
    let encoding = choose_encoding(path, options.encoding)?;
    let (layout, ignored) = read_layout(path, encoding)?;
    if !ignored.is_empty() {
        tracing::warn!(
            "{shown}: ignoring columns aviso does not use: {}",
            ignored.join(", ")
        );
    }
    let rejects_path = options
        .rejects
        .clone()
        .unwrap_or_else(|| default_rejects_path(path));

    let list_id = if options.dry_run {
        None
    } else {
        Some(store.ensure_list(&options.list, now).await?)
    };

    let mut summary = ImportSummary {
        kind: layout.kind.to_string(),
        encoding: encoding.name().to_string(),
        ignored_columns: ignored,
        dry_run: options.dry_run,
        ..ImportSummary::default()
    };

    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let checker = {
        let path = path.to_path_buf();
        let rejects_path = rejects_path.clone();
        let progress = options.progress;
        std::thread::spawn(move || {
            let outcome = check_rows(&path, encoding, layout, &rejects_path, progress, &tx);
            let _ = tx.blocking_send(Batch::Done(outcome));
        })
    };

    // Into an empty database (the registry's first import, the big one) every
    // row is new: ids repeated in the file are rejected before they get here,
    // so there is nothing to look up, and they are inserted, not upserted. A
    // concurrent import of the same ids by another process makes this one
    // fail, changing nothing of the batch at hand; run it again.
    let first_import = !store.has_contacts().await?;
    let mut totals = None;
    while let Some(batch) = rx.recv().await {
        match batch {
            Batch::Rows(rows) => {
                let ids: Vec<String> = rows.iter().map(|c| c.id.clone()).collect();
                let known = match first_import {
                    true => HashMap::new(),
                    false => store.contact_hashes(&ids).await?,
                };
                let mut changed = Vec::new();
                for contact in rows {
                    match known.get(&contact.id) {
                        None => summary.imported += 1,
                        Some(hash) if *hash == contact.content_hash() => {
                            summary.unchanged += 1;
                            continue;
                        }
                        Some(_) => summary.updated += 1,
                    }
                    changed.push(contact);
                }
                match (list_id, first_import) {
                    (Some(list_id), true) => {
                        store
                            .insert_new_contacts(list_id, &changed, &ids, now)
                            .await?
                    }
                    (Some(list_id), false) => {
                        store.save_contacts(list_id, &changed, &ids, now).await?
                    }
                    (None, _) => {}
                }
            }
            Batch::Done(outcome) => totals = Some(outcome?),
        }
    }
    let _ = checker.join();
    let totals = totals.ok_or_else(|| ImportError::Csv {
        path: shown.clone(),
        line: 0,
        detail: "the reader stopped unexpectedly".into(),
    })?;
    summary.read = totals.read;
    summary.rejected = totals.rejected;
    if totals.rejected > 0 {
        summary.rejects_file = Some(rejects_path.display().to_string());
    }
    Ok(summary)
}

fn default_rejects_path(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "contacts".into());
    PathBuf::from(format!("{stem}.rejects.csv"))
}

fn open(path: &Path) -> Result<File, ImportError> {
    File::open(path).map_err(|source| ImportError::Open {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests;
