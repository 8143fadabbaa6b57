//! DKIM signatures (RFC 6376; Ed25519 per RFC 8463) over the exact bytes aviso
//! sends, relaxed/relaxed, so receivers can tell the mail really comes from
//! the sender's domain.
//!
//! Not lettre's `dkim` feature: it signs a `Message`'s own header list, and a
//! MIME message keeps its top-level Content-Type with the body part, so lettre
//! cannot cover Content-Type (it would name it in `h=` without hashing it, and
//! every signature would fail); it also reads RSA keys only as PKCS#1 and
//! Ed25519 keys only as bare base64, and signs RSA with the pure-Rust `rsa`
//! crate, which here cost about 4 ms a message. mail-auth signs bytes, but
//! would bring a mail parser, a DNS resolver and a second generation of the
//! RustCrypto crates to every build. So the canonicalisation and the header
//! are here, checked against dkimpy in `tests/it/dkim.rs`, and the signatures
//! are ring's (already linked for TLS; constant-time, RSA blinded).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use sha2::{Digest, Sha256};

/// The headers signed, those present in the message: who it is from and to,
/// what it says, and how its body is to be read (a changed unsubscribe link or
/// MIME structure breaks the signature).
const SIGNED_HEADERS: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// RFC 8301: shorter RSA keys must not be used for signing (ring refuses them).
const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("dkim={0:?}: write the DNS name of the key's TXT record, SELECTOR._domainkey.DOMAIN (e.g. dkim=aviso2026._domainkey.votoextranjero.example)")]
    Name(String),
    #[error("dkim= is set but no key file is given: add dkim_key=/path/to/key.pem to the provider URL or set AVISO_DKIM_KEY_FILE")]
    NoKeyFile,
    #[error("{path}: cannot read the DKIM key: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Key { path: String, detail: String },
    #[error("cannot sign the message: {0}")]
    Sign(String),
}

/// A loaded, checked key and where its public half is published.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: SigningKey,
}

enum SigningKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Names only: the key itself never reaches a log.
impl fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish()
    }
}

impl DkimSigner {
    /// `name` is `SELECTOR._domainkey.DOMAIN`; the key is read and checked now,
    /// so a bad key stops the worker before its first message.
    pub fn load(name: &str, key_file: &Path) -> Result<DkimSigner, DkimError> {
        let (selector, domain) = parse_name(name)?;
        let key = load_key(key_file)?;
        let signer = DkimSigner {
            domain,
            selector,
            key,
        };
        // A key that parses but cannot sign fails here, not at the first message.
        signer
            .sign(b"From: a@example.org\r\n\r\n")
            .map_err(|e| DkimError::Key {
                path: key_file.display().to_string(),
                detail: format!("the key cannot sign: {e}"),
            })?;
        Ok(signer)
    }

    /// From the provider URL's `dkim=` and `dkim_key=` (relative to `base_dir`),
    /// or `env_key_file` (AVISO_DKIM_KEY_FILE) when the URL names no key file.
    pub fn from_settings(
        name: Option<&str>,
        key_param: Option<&str>,
        env_key_file: Option<&Path>,
        base_dir: &Path,
    ) -> Result<Option<DkimSigner>, DkimError> {
        let Some(name) = name else {
            return Ok(None);
        };
        let key_file: PathBuf = match (key_param, env_key_file) {
            (Some(p), _) => base_dir.join(p),
            (None, Some(p)) => p.to_path_buf(),
            (None, None) => return Err(DkimError::NoKeyFile),
        };
        DkimSigner::load(name, &key_file).map(Some)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn algorithm(&self) -> &'static str {
        match self.key {
            SigningKey::Rsa(_) => "rsa-sha256",
            SigningKey::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The message with its DKIM-Signature header in front. `raw` is the whole
    /// message as it goes on the wire (CRLF line ends, before SMTP dot-stuffing).
    pub fn sign(&self, raw: &[u8]) -> Result<Vec<u8>, DkimError> {
        let header = self.signature_header(raw, unix_now())?;
        let mut out = Vec::with_capacity(header.len() + raw.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(raw);
        Ok(out)
    }

    fn signature_header(&self, raw: &[u8], timestamp: u64) -> Result<String, DkimError> {
        let (head, body) = split_message(raw);
        let fields = header_fields(head);
        let engine = base64::engine::general_purpose::STANDARD;
        let body_hash = engine.encode(relaxed_body_hash(body));
        // What is signed: the canonical headers, then this header itself.
        let mut signed = Vec::with_capacity(head.len() + 256);
        let mut names = Vec::new();
        for name in SIGNED_HEADERS {
            // The last instance, as verifiers take them from the bottom up.
            if let Some(field) = fields
                .iter()
                .rev()
                .find(|f| field_name(f).eq_ignore_ascii_case(name))
            {
                signed.extend_from_slice(&relaxed_header(field));
                names.push(name.to_ascii_lowercase());
            }
        }
        let unsigned = format!(
            "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={}; s={};\r\n\tt={timestamp}; h={};\r\n\tbh={body_hash};\r\n\tb=",
            self.algorithm(),
            self.domain,
            self.selector,
            names.join(":"),
        );
        // The signature header itself comes last, with an empty b= and no CRLF.
        let canonical = relaxed_header(unsigned.as_bytes());
        signed.extend_from_slice(&canonical[..canonical.len() - 2]);
        let signature = match &self.key {
            // RSASSA-PKCS1-v1_5 over SHA-256 of the data: ring hashes it.
            SigningKey::Rsa(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    &signed,
                    &mut out,
                )
                .map_err(|_| DkimError::Sign("RSA signing failed".into()))?;
                out
            }
            // RFC 8463: Ed25519 signs the SHA-256 hash of the data.
            SigningKey::Ed25519(key) => key.sign(&Sha256::digest(&signed)).as_ref().to_vec(),
        };
        let b = engine.encode(signature);
        let mut header = unsigned;
        // Folded so that no line of the header is longer than 78 characters.
        for (i, chunk) in b.as_bytes().chunks(70).enumerate() {
            if i > 0 {
                header.push_str("\r\n\t ");
            }
            header.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        }
        header.push_str("\r\n");
        Ok(header)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse_name(name: &str) -> Result<(String, String), DkimError> {
    let bad = || DkimError::Name(name.to_string());
    let (selector, domain) = name.split_once("._domainkey.").ok_or_else(bad)?;
    // Both go into the header as they are: DNS labels only, nothing that could
    // end a tag (`;`) or the line.
    let labels_ok = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !labels_ok(selector) || !labels_ok(domain) || !domain.contains('.') {
        return Err(bad());
    }
    Ok((selector.to_string(), domain.to_ascii_lowercase()))
}

/// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519, what
/// `openssl genpkey` and OpenSSL 3's `genrsa` write) or PKCS#1 (`BEGIN RSA
/// PRIVATE KEY`). Errors name the file and never quote it.
fn load_key(path: &Path) -> Result<SigningKey, DkimError> {
    let shown = path.display().to_string();
    let key_error = |detail: String| DkimError::Key {
        path: shown.clone(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|source| DkimError::Read {
        path: shown.clone(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| key_error("not a PEM key file (it is not text)".into()))?;
    let (label, der) = pem_block(text).ok_or_else(|| {
        key_error(
            "not a PEM private key: expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----"
                .into(),
        )
    })?;
    let rsa_error = |e: ring::error::KeyRejected| {
        match e.to_string().as_str() {
        "TooSmall" => key_error(format!(
            "an RSA key under {MIN_RSA_BITS} bits: DKIM needs {MIN_RSA_BITS} or more (openssl genrsa -out KEY.pem 2048)"
        )),
        "TooLarge" => key_error("an RSA key over 4096 bits: use 2048 to 4096".into()),
        other => key_error(format!("not a usable RSA private key ({other})")),
    }
    };
    let key = match label {
        "RSA PRIVATE KEY" => SigningKey::Rsa(RsaKeyPair::from_der(&der).map_err(rsa_error)?),
        "PRIVATE KEY" => match RsaKeyPair::from_pkcs8(&der) {
            Ok(key) => SigningKey::Rsa(key),
            Err(e) if matches!(e.to_string().as_str(), "TooSmall" | "TooLarge") => {
                return Err(rsa_error(e))
            }
            // Not RSA (or not PKCS#8 at all): Ed25519 is the other choice.
            Err(_) => SigningKey::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|_| {
                    key_error(
                        "not a valid PKCS#8 RSA or Ed25519 private key: DKIM keys are RSA (2048 bits or more) or Ed25519"
                            .into(),
                    )
                })?,
            ),
        },
        "ENCRYPTED PRIVATE KEY" => {
            return Err(key_error(
                "the key is encrypted: aviso needs it without a passphrase (openssl pkey -in KEY -out PLAIN.pem), readable by the worker only"
                    .into(),
            ))
        }
        other => {
            return Err(key_error(format!(
                "a PEM {other:?}, not a private key: DKIM keys are RSA (2048 bits or more) or Ed25519"
            )))
        }
    };
    Ok(key)
}

/// The label and bytes of the first PEM block (RFC 7468) in `text`.
fn pem_block(text: &str) -> Option<(&str, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: String = rest[..end].split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    (!der.is_empty()).then_some((label, der))
}

/// Header block (with its final CRLF) and body.
fn split_message(raw: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memmem::find(raw, b"\r\n\r\n") {
        Some(i) => (&raw[..i + 2], &raw[i + 4..]),
        None => (raw, &[]),
    }
}

/// The header fields, each with its continuation lines and final CRLF.
fn header_fields(head: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(&head[at..], b"\r\n") {
        let next = at + i + 2;
        let continued = matches!(head.get(next), Some(b' ' | b'\t'));
        if !continued {
            fields.push(&head[start..next]);
            start = next;
        }
        at = next;
    }
    if start < head.len() {
        fields.push(&head[start..]);
    }
    fields
}

fn field_name(field: &[u8]) -> &str {
    let end = memchr::memchr(b':', field).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).unwrap_or("").trim_end()
}

/// RFC 6376 §3.4.2: lower-case name, unfolded, runs of whitespace made one
/// space, none around the colon or at the end; then CRLF.
fn relaxed_header(field: &[u8]) -> Vec<u8> {
    let colon = memchr::memchr(b':', field).unwrap_or(field.len());
    let mut out = Vec::with_capacity(field.len());
    let name = &field[..colon];
    let name_end = name
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    out.extend(name[..name_end].iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    let (mut space, mut started) = (false, false);
    for &b in field.get(colon + 1..).unwrap_or(&[]) {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && started {
                    out.push(b' ');
                }
                (space, started) = (false, true);
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// RFC 6376 §3.4.4: whitespace at line ends dropped, other runs made one
/// space, empty lines at the end dropped; hashed line by line.
fn relaxed_body_hash(body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut empty_lines = 0usize;
    let mut line_buf = Vec::new();
    for chunk in body.split_inclusive(|b| *b == b'\n') {
        let line = chunk
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(chunk);
        line_buf.clear();
        let mut space = false;
        for &b in line {
            if matches!(b, b' ' | b'\t') {
                space = true;
            } else {
                if space {
                    line_buf.push(b' ');
                }
                space = false;
                line_buf.push(b);
            }
        }
        // Empty lines count only once a line with text follows them.
        if line_buf.is_empty() {
            empty_lines += 1;
            continue;
        }
        for _ in 0..empty_lines {
            hasher.update(b"\r\n");
        }
        empty_lines = 0;
        hasher.update(&line_buf);
        hasher.update(b"\r\n");
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_headers_unfold_and_collapse_whitespace() {
        assert_eq!(
            relaxed_header(b"SubJect :  Hola \t a\r\n   todos  \r\n"),
            b"subject:Hola a todos\r\n"
        );
        assert_eq!(relaxed_header(b"To:\r\n x@y\r\n"), b"to:x@y\r\n");
        assert_eq!(relaxed_header(b"Subject: a : b\r\n"), b"subject:a : b\r\n");
    }

    #[test]
    fn relaxed_body_drops_trailing_space_and_empty_lines() {
        let expect: [u8; 32] = Sha256::digest(b" C\r\nD E\r\n").into();
        assert_eq!(relaxed_body_hash(b" C \r\nD \t E\r\n\r\n\r\n"), expect);
        assert_eq!(relaxed_body_hash(b" C\r\nD E"), expect);
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(relaxed_body_hash(b""), empty);
        assert_eq!(relaxed_body_hash(b"\r\n\r\n"), empty);
        let inner: [u8; 32] = Sha256::digest(b"a\r\n\r\nb\r\n").into();
        assert_eq!(relaxed_body_hash(b"a\r\n \r\nb\r\n"), inner);
    }

    #[test]
    fn header_fields_keep_their_continuation_lines() {
        let head = b"From: a\r\nSubject: b\r\n c\r\nTo: d\r\n";
        let fields = header_fields(head);
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1], b"Subject: b\r\n c\r\n");
        assert_eq!(field_name(fields[2]), "To");
    }

    #[test]
    fn names_are_dns_names_of_the_key_record() {
        assert_eq!(
            parse_name("s1._domainkey.Example.org").unwrap(),
            ("s1".to_string(), "example.org".to_string())
        );
        for bad in [
            "s1@example.org",
            "._domainkey.example.org",
            "s1._domainkey.org",
            "s1._domainkey.exa;mple.org",
            "s 1._domainkey.example.org",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
