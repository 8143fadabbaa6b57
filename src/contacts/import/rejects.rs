//! The rejects file people fix and import again.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::Rejection;

/// The rejects CSV: `line, id, field, reason` then the original row, opened
/// only when the first row is rejected. Cells are made inert for spreadsheets.
pub(super) struct RejectsWriter {
    path: PathBuf,
    headers: csv::StringRecord,
    writer: Option<csv::Writer<File>>,
}

impl RejectsWriter {
    pub(super) fn new(path: &Path, headers: &csv::StringRecord) -> Self {
        RejectsWriter {
            path: path.to_path_buf(),
            headers: headers.clone(),
            writer: None,
        }
    }

    pub(super) fn write(
        &mut self,
        rejection: &Rejection,
        record: &csv::StringRecord,
    ) -> std::io::Result<()> {
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

    pub(super) fn finish(self) -> std::io::Result<()> {
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
