//! DKIM-signed e-mail, checked by an independent verifier: Python's dkimpy,
//! given the public key through its DNS hook. Keys are made with openssl at
//! test time (no private key is committed). Messages go through a real
//! smtp-sink; a bad key stops the worker before anything reaches it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dispatch::{email_campaign, workspace_for};
use crate::support::peers::SmtpSink;
use crate::support::Workspace;

const PYTHON: &str = "/usr/bin/python3";
/// The preview of a campaign e-mail as it would be sent, to stdout.
const PREVIEW_EML: [&str; 6] = [
    "templates",
    "preview",
    "registro_abierto",
    "--channel",
    "email",
    "--eml",
];
const SELECTOR: &str = "aviso2026";
/// The domain of the default sender, so the signature aligns with From (DMARC).
const DOMAIN: &str = "votoextranjero.example";

/// Verifies each file given, answering the key lookup with the TXT record in
/// argv[1] and refusing any other name; prints one pass/fail line per file.
const VERIFY: &str = r#"
import sys, dkim
expected, record = sys.argv[1].encode(), open(sys.argv[2], "rb").read()
def dns(name, timeout=5):
    return record if name.rstrip(b".") == expected else None
for path in sys.argv[3:]:
    ok = dkim.verify(open(path, "rb").read(), dnsfunc=dns)
    print(("pass " if ok else "fail ") + path)
"#;

/// The independent verifier, dkimpy, and openssl for the keys: the tests
/// that need them are ignored by a plain `cargo test`, and fail when run
/// without them.
fn require_verifier() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import dkim, nacl"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "needs python3-dkim, python3-nacl and openssl, which are not installed (ops/test installs them)"
    );
}

#[derive(Clone, Copy, Debug)]
enum Algo {
    /// PKCS#8 (`BEGIN PRIVATE KEY`), as OpenSSL 3 writes it.
    Rsa,
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    RsaPkcs1,
    Ed25519,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A new private key in `dir` and the TXT record publishing its public half.
fn new_key(dir: &Path, algo: Algo) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{algo:?}.pem").to_lowercase());
    let key_str = key.to_str().unwrap();
    match algo {
        Algo::Rsa => openssl(&["genrsa", "-out", key_str, "2048"]),
        Algo::RsaPkcs1 => openssl(&["genrsa", "-traditional", "-out", key_str, "2048"]),
        Algo::Ed25519 => openssl(&["genpkey", "-algorithm", "ed25519", "-out", key_str]),
    };
    let spki = openssl(&["pkey", "-in", key_str, "-pubout", "-outform", "DER"]);
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let record = match algo {
        Algo::Rsa | Algo::RsaPkcs1 => format!("v=DKIM1; k=rsa; p={}", b64(&spki)),
        // RFC 8463: the bare 32-byte key, the end of its SubjectPublicKeyInfo.
        Algo::Ed25519 => format!("v=DKIM1; k=ed25519; p={}", b64(&spki[spki.len() - 32..])),
    };
    let txt = dir.join(format!("{algo:?}.txt").to_lowercase());
    std::fs::write(&txt, record).unwrap();
    (key, txt)
}

/// dkimpy's verdict on each message: true when it verifies.
fn verify(dir: &Path, record: &Path, messages: &[String]) -> Vec<bool> {
    let mut files = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let path = dir.join(format!("msg{i}.eml"));
        std::fs::write(&path, m).unwrap();
        files.push(path.display().to_string());
    }
    verify_files(record, &files)
}

fn verify_files(record: &Path, files: &[String]) -> Vec<bool> {
    let out = Command::new(PYTHON)
        .args(["-c", VERIFY, &format!("{SELECTOR}._domainkey.{DOMAIN}")])
        .arg(record)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.starts_with("pass "))
        .collect();
    assert_eq!(verdicts.len(), files.len());
    verdicts
}

fn dkim_query(key: &Path) -> String {
    format!(
        "&dkim={SELECTOR}._domainkey.{DOMAIN}&dkim_key={}",
        key.display()
    )
}

/// The headers the signature names, from its h= tag.
fn signed_headers(message: &str) -> String {
    let start = message.find("DKIM-Signature:").expect("a DKIM-Signature");
    let header: String = message[start..]
        .split("\n")
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("");
    let h = header.split("h=").nth(1).expect("an h= tag");
    h.split(';').next().unwrap().replace(['\r', '\t', ' '], "")
}

#[test]
#[ignore = "needs smtp-sink and dkimpy: run ops/test"]
fn campaign_mail_signed_with_rsa_or_ed25519_verifies_and_a_changed_body_does_not() {
    require_verifier();
    // RSA (PKCS#8) through a server taking 8-bit bodies and RSA (PKCS#1)
    // quoted-printable (smtp-sink -8), keys in the URL; Ed25519 quoted-printable
    // with the key from the environment.
    for (algo, sink_args, key_in_env) in [
        (Algo::Rsa, &[][..], false),
        (Algo::RsaPkcs1, &["-8"][..], false),
        (Algo::Ed25519, &["-8"][..], true),
    ] {
        let sink = SmtpSink::start(sink_args);
        let keys = tempfile::tempdir().unwrap();
        let (key, record) = new_key(keys.path(), algo);
        let mut ws = if key_in_env {
            let mut ws = workspace_for(&sink, &format!("&dkim={SELECTOR}._domainkey.{DOMAIN}"));
            ws.env("AVISO_DKIM_KEY_FILE", key.to_str().unwrap());
            ws
        } else {
            workspace_for(&sink, &dkim_query(&key))
        };
        ws.env("AVISO_LOG", "info");
        let id = email_campaign(&ws, 20);
        ws.ok(&["campaign", "start", &id.to_string()]);
        let out = ws.run(&["worker", "--once", "--json"]);
        assert!(out.status.success(), "{algo:?}: worker failed");
        let log = String::from_utf8_lossy(&out.stderr);
        let key_text = std::fs::read_to_string(&key).unwrap();
        let key_line = key_text.lines().nth(1).unwrap();
        assert!(!log.contains(key_line), "{algo:?}: key in the log");
        assert_eq!(
            sink.wait_for_count(20, std::time::Duration::from_secs(60)),
            20
        );

        let messages = sink.messages();
        let a = match algo {
            Algo::Rsa | Algo::RsaPkcs1 => "a=rsa-sha256",
            Algo::Ed25519 => "a=ed25519-sha256",
        };
        assert!(messages.iter().all(|m| m.contains(a)), "{algo:?}: {a}");
        assert_eq!(
            signed_headers(&messages[0]),
            "from:to:subject:date:message-id:list-unsubscribe:list-unsubscribe-post:mime-version:content-type"
        );
        let verdicts = verify(keys.path(), &record, &messages);
        assert!(verdicts.iter().all(|v| *v), "{algo:?}: {verdicts:?}");

        // One changed character in the body, or in the subject, and it fails.
        let body_changed = messages[0]
            .replacen("Hola", "Hol4", 1)
            .replacen("Hello", "Hell0", 1);
        assert_ne!(body_changed, messages[0]);
        let subject_changed = messages[1].replacen("Subject: ", "Subject: Re: ", 1);
        let verdicts = verify(keys.path(), &record, &[body_changed, subject_changed]);
        assert_eq!(
            verdicts,
            [false, false],
            "{algo:?}: a changed message verified"
        );
    }
}

#[test]
#[ignore = "needs smtp-sink and openssl: run ops/test"]
fn a_missing_unreadable_malformed_or_short_key_stops_the_worker_before_any_send() {
    require_verifier();
    let sink = SmtpSink::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path();
    let short = dir.join("short.pem");
    openssl(&["genrsa", "-out", short.to_str().unwrap(), "1024"]);
    let malformed = dir.join("malformed.pem");
    std::fs::write(
        &malformed,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldC1zZWNyZXQ=\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let unreadable = dir.join("a-directory.pem");
    std::fs::create_dir(&unreadable).unwrap();
    let missing = dir.join("missing.pem");
    for (key, says) in [
        (&missing, "cannot read the DKIM key"),
        (&unreadable, "cannot read the DKIM key"),
        (&malformed, "not a valid PKCS#8 RSA or Ed25519 private key"),
        (&short, "an RSA key under 2048 bits"),
    ] {
        let ws = workspace_for(&sink, &dkim_query(key));
        let id = email_campaign(&ws, 3);
        ws.ok(&["campaign", "start", &id.to_string()]);
        let err = ws.fails(&["worker", "--once"], 1);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&key.display().to_string()),
            "names the file: {err}"
        );
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("c2VjcmV0"), "quotes the key: {err}");
        let status = ws.json(&["campaign", "status", &id.to_string(), "--json"]);
        assert_eq!(status["counts"]["queued"], 3, "{status}");
    }
    // dkim= with no key file anywhere.
    let ws = workspace_for(&sink, &format!("&dkim={SELECTOR}._domainkey.{DOMAIN}"));
    let err = ws.fails(&["worker", "--once"], 1);
    assert!(err.contains("AVISO_DKIM_KEY_FILE"), "{err}");
    assert_eq!(sink.message_count(), 0, "a message left with a bad key");
}

#[test]
#[ignore = "needs dkimpy and openssl: run ops/test"]
fn the_eml_preview_is_the_signed_message_and_verifies() {
    require_verifier();
    let keys = tempfile::tempdir().unwrap();
    let (key, record) = new_key(keys.path(), Algo::Ed25519);
    let mut ws = Workspace::new();
    // Opened, never connected to: the preview sends nothing.
    let url = format!("smtp://127.0.0.1:9?tls=none{}", dkim_query(&key));
    ws.env("AVISO_EMAIL_PROVIDER", &url);
    let out = ws.path().join("muestra.eml");
    let said = ws.ok(&[
        "templates",
        "preview",
        "registro_abierto",
        "--channel",
        "email",
        "--lang",
        "both",
        "--eml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        said.contains("signed for votoextranjero.example (ed25519-sha256)"),
        "{said}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only");
    let eml = std::fs::read_to_string(&out).unwrap();
    assert!(
        eml.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
        "{eml}"
    );
    assert!(eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    let stdout = ws.ok(&PREVIEW_EML);
    let files = [out.display().to_string(), ws.write("stdout.eml", &stdout)];
    assert_eq!(verify_files(&record, &files), [true, true]);

    let tampered = ws.write("tampered.eml", eml.replacen("registr", "regixtr", 1));
    assert_eq!(verify_files(&record, &[tampered]), [false]);

    // Without dkim= the preview is the same message, unsigned.
    let mut plain = Workspace::new();
    plain.env("AVISO_EMAIL_PROVIDER", "smtp://127.0.0.1:9?tls=none");
    let unsigned = plain.ok(&PREVIEW_EML);
    assert!(!unsigned.contains("DKIM-Signature"));
    let err = plain.fails(
        &[
            "templates",
            "preview",
            "registro_abierto",
            "--channel",
            "sms",
            "--eml",
        ],
        2,
    );
    assert!(err.contains("--channel email"), "{err}");
}
