//! The checking thread: every row read, checked and either sent on in batches
//! or written to the rejects file with its line and reason.

use super::*;

/// The checking thread: reads every row, rejects with reasons, and sends the
/// good ones on in batches.
pub(super) fn check_rows(
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
