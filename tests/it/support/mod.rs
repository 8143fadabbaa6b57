//! Shared helpers for the integration tests (one binary: `tests/it/main.rs`).
//! Each test gets its own workspace (a temp dir with its own SQLite database);
//! tests that need a real peer start it through `peers`.

pub mod engine;
pub mod peers;
pub mod postfix;
pub mod scripted;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `aviso` binary cargo built for these tests.
pub fn aviso_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aviso"))
}

/// A copy of a fixture under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An isolated installation: its own directory, database and providers.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub database_url: String,
    env: Vec<(String, String)>,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("aviso.db").display());
        Workspace {
            dir,
            database_url,
            env: Vec::new(),
        }
    }

    /// A workspace whose database is a fresh PostgreSQL database.
    pub fn postgres(base_url: &str) -> Workspace {
        let mut ws = Workspace::new();
        ws.database_url = create_pg_database(base_url);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable for every command of this workspace.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Workspace {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(aviso_bin());
        cmd.current_dir(self.path())
            .env("AVISO_DATABASE_URL", &self.database_url)
            .env_remove("AVISO_CONFIG")
            .env_remove("AVISO_TEMPLATES")
            .env_remove("AVISO_EMAIL_PROVIDER")
            .env_remove("AVISO_SMS_PROVIDER")
            .env(
                "AVISO_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a command, whatever its exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run aviso")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "aviso {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("aviso {args:?}: not JSON ({e}): {out}"))
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "aviso {args:?}: expected exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes a file in the workspace and returns its path as a string.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }
}

/// A fresh database on the test PostgreSQL server, for one test.
pub fn create_pg_database(base_url: &str) -> String {
    let name = format!("aviso_{:016x}", rand_u64());
    let admin = std::process::Command::new("psql")
        .arg(base_url)
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("run psql");
    assert!(
        admin.status.success(),
        "cannot create a test database: {}",
        String::from_utf8_lossy(&admin.stderr)
    );
    let (prefix, _) = base_url.rsplit_once('/').expect("database URL with a path");
    format!("{prefix}/{name}")
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// A plain HTTP/1.0 request over std (no client library to set up):
/// returns the status code and body.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A background `aviso` process, killed (SIGKILL) when dropped.
pub struct Background(pub std::process::Child);

impl Background {
    pub fn spawn(mut cmd: Command) -> Background {
        Background(
            cmd.stdout(std::process::Stdio::null())
                .spawn()
                .expect("start aviso in the background"),
        )
    }

    /// SIGTERM, the graceful stop, then waits for the process to exit.
    pub fn stop(mut self) {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.0.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "aviso ignored SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long [`drain`] waits for a campaign: generous, the machine running the
/// tests may be busy with other builds.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `worker --once` until `campaign` has nothing queued, sending or
/// retrying (retries wait in the database, so one pass may leave some for
/// later); returns its last `campaign status --json`.
pub fn drain(ws: &Workspace, campaign: i64) -> Value {
    let deadline = std::time::Instant::now() + DRAIN_WAIT;
    loop {
        ws.ok(&["worker", "--once"]);
        let status = ws.json(&["campaign", "status", &campaign.to_string(), "--json"]);
        let pending: i64 = ["queued", "sending", "retrying"]
            .iter()
            .map(|s| status["counts"][s].as_i64().expect("a count"))
            .sum();
        if pending == 0 {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "campaign {campaign} never finished: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Polls `check` until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A copy of the shipped templates in `dir`, to change for a test.
pub fn copy_templates(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let target = dir.join("templates");
    copy_dir(&source, &target);
    target
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// A `worker --once --json` report in which every one of `n` messages was
/// deferred and none sent or failed. Tests retry after 0.1-0.2 s, so a slow
/// run may have tried some twice: at least `n` retries, not exactly.
pub fn assert_all_deferred(report: &Value, n: i64, why: &str) {
    assert!(report["retrying"].as_i64() >= Some(n), "{why}: {report}");
    assert_eq!(
        (&report["sent"], &report["failed"]),
        (&0.into(), &0.into()),
        "{why}: {report}"
    );
}

/// A workspace sending SMS through `provider_url` with these credentials,
/// the contacts of `contacts_csv` in the list `moviles`, and an SMS activity
/// `SMS`.
pub fn sms_workspace(
    provider_url: &str,
    (username, password): (&str, &str),
    contacts_csv: &str,
) -> Workspace {
    let mut ws = Workspace::new();
    ws.env("AVISO_SMS_PROVIDER", provider_url)
        .env("AVISO_SMS_USERNAME", username)
        .env("AVISO_SMS_PASSWORD", password);
    let csv = ws.write("phones.csv", contacts_csv);
    ws.ok(&["contacts", "import", &csv, "--list", "moviles"]);
    ws.ok(&[
        "activity",
        "create",
        "--code",
        "SMS",
        "--name",
        "SMS",
        "--channel",
        "sms",
        "--programmed",
        "1000",
    ]);
    ws
}
