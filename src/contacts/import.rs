//! `aviso contacts import`: reads a registry export or the OSC directory, keeps
//! every row accounted for (imported + updated + unchanged + rejected = read),
//! and writes the rejected rows, with line and reason, to a CSV people can fix.
//!
//! The file is streamed: one thread reads and checks rows, the caller's task
//! writes batches to the store, so memory stays bounded whatever the file size.

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::Contact;
use crate::domain::{
    fold, ContactKind, Country, Credential, EmailAddress, Entity, Invalid, Language, Modality,
    PhoneNumber, Population,
};
use crate::store::{Store, StoreError};

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

/// A reader that yields UTF-8 whatever the file's encoding, without its BOM,
/// with LF line ends.
fn decoded(path: &Path, encoding: Encoding) -> Result<impl Read, ImportError> {
    let label = match encoding {
        Encoding::Utf8 => encoding_rs::UTF_8,
        Encoding::Latin1 => encoding_rs::WINDOWS_1252,
    };
    let utf8 = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(label))
        .bom_override(true)
        .build(BufReader::with_capacity(1 << 16, open(path)?));
    Ok(CrlfAsLf::new(BufReader::with_capacity(1 << 16, utf8)))
}

/// Reads CRLF line ends as LF. The csv crate dates a record with the line count
/// taken before it has consumed the LF of the previous CRLF, so in a CRLF file
/// (what Excel on Windows writes) every line number came out one too small.
pub(crate) struct CrlfAsLf<R> {
    inner: R,
    /// The last chunk ended with a CR: it is dropped if an LF comes next.
    pending_cr: bool,
}

impl<R: std::io::BufRead> CrlfAsLf<R> {
    pub(crate) fn new(inner: R) -> Self {
        CrlfAsLf {
            inner,
            pending_cr: false,
        }
    }
}

impl<R: std::io::BufRead> Read for CrlfAsLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pending_cr {
            self.pending_cr = false;
            if self.inner.fill_buf()?.first() != Some(&b'\n') {
                out[0] = b'\r';
                return Ok(1);
            }
        }
        let input = self.inner.fill_buf()?;
        let (mut taken, mut written) = (0, 0);
        while taken < input.len() && written < out.len() {
            let byte = input[taken];
            taken += 1;
            if byte == b'\r' {
                match input.get(taken) {
                    Some(b'\n') => continue,
                    None => {
                        self.pending_cr = true;
                        break;
                    }
                    Some(_) => {}
                }
            }
            out[written] = byte;
            written += 1;
        }
        self.inner.consume(taken);
        if written == 0 && self.pending_cr {
            // The chunk was a lone CR: what follows decides.
            return self.read(out);
        }
        Ok(written)
    }
}

fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(input)
}

fn read_layout(path: &Path, encoding: Encoding) -> Result<(Layout, Vec<String>), ImportError> {
    let shown = path.display().to_string();
    let mut reader = csv_reader(decoded(path, encoding)?);
    let headers = reader.headers().map_err(|e| ImportError::Csv {
        path: shown.clone(),
        line: 1,
        detail: format!("cannot read the header row: {e}"),
    })?;
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(ImportError::Csv {
            path: shown,
            line: 1,
            detail: "the file is empty or has no header row".into(),
        });
    }
    Layout::from_headers(&shown, headers)
}

/// Reads the whole file once before anything is written: a file that is not
/// UTF-8 is read as Windows-1252 (what Excel writes), and a file that was
/// converted to UTF-8 twice ("GarcÃ­a") is refused, so nothing is imported as
/// mojibake and a bad file is refused before it changes anything.
/// What the scan of the file found.
struct Scan {
    utf8: bool,
    /// The first line that is not valid UTF-8, if any.
    invalid_line: Option<u64>,
    non_ascii: bool,
}

/// The encoding to read with: the one asked for, if the file agrees, or the
/// one detected. A choice that would garble accents is refused.
fn choose_encoding(path: &Path, asked: Option<Encoding>) -> Result<Encoding, ImportError> {
    let shown = path.display().to_string();
    let scan = scan_encoding(path)?;
    match (asked, scan.utf8) {
        (Some(Encoding::Latin1), true) if scan.non_ascii => Err(ImportError::Encoding {
            path: shown,
            detail: "the file is UTF-8, not Latin-1: reading it as Latin-1 would garble every accent; \
                     leave out --encoding"
                .into(),
        }),
        (Some(Encoding::Utf8), false) => Err(ImportError::Encoding {
            path: shown,
            detail: format!(
                "line {} is not valid UTF-8; the file looks like Latin-1 (Windows-1252): use --encoding latin1",
                scan.invalid_line.unwrap_or(1)
            ),
        }),
        (Some(asked), _) => Ok(asked),
        (None, true) => Ok(Encoding::Utf8),
        (None, false) => {
            tracing::warn!("{shown}: not UTF-8; reading it as Windows-1252 (Latin-1). Use --encoding to choose.");
            Ok(Encoding::Latin1)
        }
    }
}

fn scan_encoding(path: &Path) -> Result<Scan, ImportError> {
    let shown = path.display().to_string();
    let mut file = BufReader::with_capacity(1 << 16, open(path)?);
    let mut buf = vec![0u8; 1 << 16];
    let mut carry: Vec<u8> = Vec::new();
    let mut line = 1u64;
    let mut utf8 = true;
    let mut non_ascii = false;
    loop {
        let n = file.read(&mut buf).map_err(|source| ImportError::Open {
            path: shown.clone(),
            source,
        })?;
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        let valid_up_to = match std::str::from_utf8(&carry) {
            Ok(_) => carry.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => {
                utf8 = false;
                break;
            }
        };
        let text = std::str::from_utf8(&carry[..valid_up_to]).unwrap_or("");
        non_ascii |= !text.is_ascii();
        if let Some(sample) = double_encoded(text) {
            let at = line
                + text[..text.find(&sample).unwrap_or(0)]
                    .matches('\n')
                    .count() as u64;
            return Err(ImportError::Encoding {
                path: shown,
                detail: format!(
                    "line {at} contains {sample:?}, text converted to UTF-8 twice; \
                     export the file again as UTF-8 (or as Latin-1 and use --encoding latin1)"
                ),
            });
        }
        line += memchr::memchr_iter(b'\n', text.as_bytes()).count() as u64;
        carry.drain(..valid_up_to);
    }
    if utf8 && !carry.is_empty() {
        utf8 = false;
    }
    let invalid_line = (!utf8).then(|| {
        let valid = std::str::from_utf8(&carry)
            .map(|t| t.len())
            .unwrap_or_else(|e| e.valid_up_to());
        line + carry[..valid].iter().filter(|&&b| b == b'\n').count() as u64
    });
    Ok(Scan {
        utf8,
        invalid_line,
        non_ascii: non_ascii || !utf8,
    })
}

/// Finds the tell-tale of UTF-8 decoded as Latin-1 and encoded again: `Ã` or `Â`
/// followed by a character from the C1/Latin-1 punctuation range.
fn double_encoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    // 'Ã' and 'Â' are C3 83 and C3 82 in UTF-8: looking for the byte is much
    // faster than walking every character of a file of a million rows.
    memchr::memchr_iter(0xC3, bytes)
        .filter(|&i| matches!(bytes.get(i + 1), Some(0x82 | 0x83)))
        .find_map(|i| {
            let next = text[i + 2..].chars().next()?;
            let c1 = ('\u{80}'..='\u{bf}').contains(&next)
                || "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ".contains(next);
            c1.then(|| text[i..i + 2 + next.len_utf8()].to_string())
        })
}

/// The checking thread: reads every row, rejects with reasons, and sends the
/// good ones on in batches.
fn check_rows(
    path: &Path,
    encoding: Encoding,
    layout: Layout,
    rejects_path: &Path,
    progress: bool,
    tx: &mpsc::Sender<Batch>,
) -> Result<CheckTotals, ImportError> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = if progress {
        indicatif::ProgressBar::new(size).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} [{bar:30}] {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut reader = csv_reader(decoded(path, encoding)?);
    let headers = reader.headers().cloned().unwrap_or_default();
    let mut rejects = RejectsWriter::new(rejects_path, &headers);
    let mut seen = SeenIds::default();
    let mut totals = CheckTotals::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(ImportError::Csv {
                    path: shown,
                    line,
                    detail: e.to_string(),
                });
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        totals.read += 1;
        if totals.read % 4096 == 0 {
            let offset = record.position().map(|p| p.byte()).unwrap_or(0);
            bar.set_position(offset);
            if totals.read == 4096 {
                seen.expect(size.saturating_mul(4096) / offset.max(1));
            }
        }
        let outcome = if record.len() != layout.width {
            Err(vec![(
                Field::Id,
                format!(
                    "row has {} fields but the header has {} (a stray comma or quote?)",
                    record.len(),
                    layout.width
                ),
            )])
            .map_err(|p| ("row".to_string(), p))
        } else {
            layout.parse(&record).map_err(|p| (String::new(), p))
        };
        let contact = match outcome {
            Ok(contact) => match seen.first_line(&contact.id, line) {
                Some(first) => Err(Rejection {
                    line,
                    id: contact.id.clone(),
                    field: "id_contacto".into(),
                    reason: format!("repeated id_contacto; first seen on line {first}"),
                }),
                None => Ok(contact),
            },
            Err((field_override, problems)) => {
                let id = layout.row_id(&record);
                if !id.is_empty() {
                    seen.first_line(&id, line);
                }
                let field = if field_override.is_empty() {
                    problems
                        .iter()
                        .map(|(f, _)| f.column())
                        .collect::<Vec<_>>()
                        .join(";")
                } else {
                    field_override
                };
                let reason = problems
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(Rejection {
                    line,
                    id,
                    field,
                    reason,
                })
            }
        };
        match contact {
            Ok(contact) => {
                batch.push(contact);
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.blocking_send(Batch::Rows(full)).is_err() {
                        break;
                    }
                }
            }
            Err(rejection) => {
                totals.rejected += 1;
                tracing::debug!(line = rejection.line, field = %rejection.field, "rejected row");
                rejects
                    .write(&rejection, &record)
                    .map_err(|source| ImportError::Rejects {
                        path: rejects_path.display().to_string(),
                        source,
                    })?;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Batch::Rows(batch));
    }
    rejects.finish().map_err(|source| ImportError::Rejects {
        path: rejects_path.display().to_string(),
        source,
    })?;
    bar.finish_and_clear();
    Ok(totals)
}

/// The `id_contacto` values seen so far in a file, each with the line it was
/// first seen on. A registry export can hold millions of rows, so the ids are
/// packed one after another in one buffer (a two-byte length, then the bytes)
/// and the table keeps only their offsets: about 30 bytes an id, against about
/// 80 in a `HashMap<String, u64>`.
#[derive(Default)]
struct SeenIds {
    packed: Vec<u8>,
    table: hashbrown::HashTable<SeenId>,
    hasher: std::hash::RandomState,
}

struct SeenId {
    offset: usize,
    line: u64,
}

impl SeenIds {
    /// Makes room for about `rows` ids at once, so the table is not doubled
    /// (holding old and new copies) again and again while a large file is read.
    fn expect(&mut self, rows: u64) {
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        let (packed, hasher) = (&self.packed, &self.hasher);
        self.table
            .reserve(rows.saturating_sub(self.table.len()), |seen| {
                hasher.hash_one(Self::id_at(packed, seen.offset))
            });
    }

    fn id_at(packed: &[u8], offset: usize) -> &[u8] {
        let len = usize::from(u16::from_le_bytes([packed[offset], packed[offset + 1]]));
        &packed[offset + 2..offset + 2 + len]
    }

    /// The line `id` was first seen on, or `None` (and `line` is remembered)
    /// if this is its first appearance. Ids longer than 64 KiB are never valid
    /// (the limit is 200 characters), so they are not remembered.
    fn first_line(&mut self, id: &str, line: u64) -> Option<u64> {
        let Ok(len) = u16::try_from(id.len()) else {
            return None;
        };
        let hash = self.hasher.hash_one(id.as_bytes());
        let packed = &self.packed;
        if let Some(seen) = self.table.find(hash, |seen| {
            Self::id_at(packed, seen.offset) == id.as_bytes()
        }) {
            return Some(seen.line);
        }
        let offset = self.packed.len();
        self.packed.extend_from_slice(&len.to_le_bytes());
        self.packed.extend_from_slice(id.as_bytes());
        let (packed, hasher) = (&self.packed, &self.hasher);
        self.table
            .insert_unique(hash, SeenId { offset, line }, |seen| {
                hasher.hash_one(Self::id_at(packed, seen.offset))
            });
        None
    }
}

/// The rejects CSV: `line, id, field, reason` then the original row, opened
/// only when the first row is rejected. Cells are made inert for spreadsheets.
struct RejectsWriter {
    path: PathBuf,
    headers: csv::StringRecord,
    writer: Option<csv::Writer<File>>,
}

impl RejectsWriter {
    fn new(path: &Path, headers: &csv::StringRecord) -> Self {
        RejectsWriter {
            path: path.to_path_buf(),
            headers: headers.clone(),
            writer: None,
        }
    }

    fn write(&mut self, rejection: &Rejection, record: &csv::StringRecord) -> std::io::Result<()> {
        if self.writer.is_none() {
            // Flexible: a row with more fields than the header is kept whole.
            let mut writer = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(create_private(&self.path)?);
            let mut header = vec!["line", "id", "field", "reason"];
            header.extend(self.headers.iter());
            writer.write_record(header)?;
            self.writer = Some(writer);
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let line = rejection.line.to_string();
        let mut row: Vec<String> = vec![
            line,
            crate::report::inert_cell(&rejection.id),
            rejection.field.clone(),
            crate::report::inert_cell(&rejection.reason),
        ];
        row.extend(record.iter().map(crate::report::inert_cell));
        // A row with fewer fields than the header (a reason to reject it) is
        // padded, so that every cell stays under its column's title.
        row.resize(row.len().max(4 + self.headers.len()), String::new());
        writer.write_record(&row)?;
        Ok(())
    }

    fn finish(self) -> std::io::Result<()> {
        match self.writer {
            Some(mut w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Rejected rows are voters' personal data: owner-only, like the database.
fn create_private(path: &Path) -> std::io::Result<File> {
    crate::files::owner_only()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_ids_are_slugs_of_the_name() {
        assert_eq!(organization_id("Asociación Chee"), "OSC-asociacion-chee");
        assert_eq!(
            organization_id("  Amigos de  Tamaulipas, A.C. "),
            "OSC-amigos-de-tamaulipas-a-c"
        );
    }

    #[test]
    fn seen_ids_remember_the_first_line_through_growth() {
        let mut seen = SeenIds::default();
        for line in 0..5000u64 {
            assert_eq!(seen.first_line(&format!("C{line:08}"), line + 2), None);
            if line == 100 {
                seen.expect(3000);
            }
        }
        assert_eq!(seen.first_line("C00000000", 9000), Some(2));
        assert_eq!(seen.first_line("C00004999", 9001), Some(5001));
        assert_eq!(seen.first_line("Ñandú-ü", 9002), None);
        assert_eq!(seen.first_line("Ñandú-ü", 9003), Some(9002));
        assert_eq!(seen.first_line("", 9004), None);
        assert_eq!(seen.first_line("", 9005), Some(9004));
        let long = "x".repeat(70_000);
        assert_eq!(seen.first_line(&long, 9006), None);
        assert_eq!(seen.first_line(&long, 9007), None);
    }

    #[test]
    fn names_lose_line_breaks_and_runs_of_spaces() {
        assert_eq!(clean_text("  Rosa \r\n María\t"), "Rosa María");
        assert_eq!(clean_text("Rosa María"), "Rosa María");
        assert_eq!(clean_text("Rosa\u{a0}María "), "Rosa María");
        assert_eq!(clean_text(""), "");
    }

    proptest::proptest! {
        #[test]
        fn clean_text_is_the_words_joined_by_one_space(s in "[a é\t\r\n\u{a0}\u{2003}\u{7}]{0,12}") {
            let words: Vec<&str> = s
                .split(|c: char| c.is_whitespace() || c.is_control())
                .filter(|w| !w.is_empty())
                .collect();
            proptest::prop_assert_eq!(clean_text(&s), words.join(" "));
        }
    }

    #[test]
    fn crlf_is_read_as_lf_wherever_the_chunks_split() {
        let input = b"a\r\nb\rc\r\n\r\n\"d\r\ne\"\r";
        for capacity in [1, 2, 3, 64] {
            let mut out = String::new();
            CrlfAsLf::new(BufReader::with_capacity(capacity, &input[..]))
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "a\nb\rc\n\n\"d\ne\"\r", "capacity {capacity}");
        }
    }

    #[test]
    fn double_encoding_is_spotted() {
        assert_eq!(double_encoded("García"), None);
        // "García" converted to UTF-8 twice: Ã then a soft hyphen.
        assert_eq!(
            double_encoded("Garc\u{c3}\u{ad}a").as_deref(),
            Some("\u{c3}\u{ad}")
        );
        assert!(double_encoded("\u{c2}\u{bf}Dónde?").is_some());
        assert_eq!(double_encoded("S\u{c3}O PAULO"), None);
    }

    #[test]
    fn headers_in_english_are_understood() {
        for h in [
            "id",
            "first_name",
            "last_name",
            "entity",
            "country",
            "email",
            "country_code",
            "phone",
            "language",
        ] {
            assert!(Field::from_header(h).is_some(), "{h}");
        }
        assert_eq!(Field::from_header(" País "), Some(Field::Country));
        assert_eq!(Field::from_header("Teléfono"), Some(Field::Phone));
    }
}
