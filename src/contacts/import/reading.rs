//! Reading an export: its encoding (UTF-8 with or without BOM, or
//! Windows-1252, chosen by scanning the file), CRLF read as LF, and the header
//! row's layout.

use std::io::{BufReader, Read};
use std::path::Path;

use super::*;

/// A reader that yields UTF-8 whatever the file's encoding, without its BOM,
/// with LF line ends.
pub(super) fn decoded(path: &Path, encoding: Encoding) -> Result<impl Read, ImportError> {
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

pub(super) fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(input)
}

pub(super) fn read_layout(
    path: &Path,
    encoding: Encoding,
) -> Result<(Layout, Vec<String>), ImportError> {
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
pub(super) fn choose_encoding(
    path: &Path,
    asked: Option<Encoding>,
) -> Result<Encoding, ImportError> {
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
pub(super) fn double_encoded(text: &str) -> Option<String> {
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
