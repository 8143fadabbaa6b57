//! Real peers on loopback for the integration tests: Postfix's `smtp-sink`,
//! Kannel (`bearerbox`, `smsbox` and its fake SMS centre `fakesmsc`), and the
//! private PostgreSQL cluster `ops/test` starts.
//!
//! Every helper binds to 127.0.0.1 only, on free ports, and stops what it
//! started when dropped (each child runs in its own process group, so a signal
//! reaches all of it). Tests that need a peer are `#[ignore = "needs …: run
//! ops/test"]`, so a plain `cargo test` counts them as ignored; run on purpose
//! (`ops/test`, or `-- --include-ignored`), a missing peer fails the test
//! instead of letting it pass with nothing sent. On a panic the helpers print
//! the tail of their logs, so a failing test shows what the peer saw.
//!
//! # What the peers do (recorded on Debian 12: Postfix 3.7.11, Kannel 1.4.5)
//!
//! The SMS and SMTP clients classify outcomes from these exact answers.
//!
//! ## Kannel `GET /cgi-bin/sendsms`
//!
//! The body is one line without a trailing newline (`Content-type: text/html`).
//!
//! | request                                              | HTTP | body |
//! |------------------------------------------------------|------|------|
//! | valid, fake SMSC connected                           | 202  | `0: Accepted for delivery` |
//! | valid, no SMSC connected (bearerbox stores it)       | 202  | `3: Queued for later delivery` |
//! | no `to`                                              | 400  | `Missing receiver number, rejected` |
//! | `to=` (empty)                                        | 400  | `Empty receiver number not allowed, rejected` |
//! | `to=abc`                                             | 400  | `Number(s) has/have been denied by white- and/or black-lists.` |
//! | wrong `password`, unknown `username`, or neither     | 403  | `Authorization failed for sendsms` |
//! | no `from` (and no `global-sender`)                   | 400  | `Sender missing and no global set, rejected` |
//! | `coding=5`                                           | 400  | `Coding field misformed, rejected` |
//! | `mclass=9`                                           | 400  | `MClass field misformed, rejected` |
//! | `charset=FOO-9`                                      | 400  | `Charset or body misformed, rejected` |
//! | POST with a form body                                | 403  | `Invalid content-type` (Kannel has its own POST format: use GET) |
//! | another path                                         | 404  | `Unknown request.` |
//! | smsbox down                                          | —    | connection refused |
//!
//! Accepted (202 `0: Accepted for delivery`) although wrong, so the client must
//! guard against these itself:
//! - `coding=2` without `charset`: the UTF-8 bytes go out as if they were
//!   UCS-2 (`Votación` arrives as 9 raw bytes). Always send `charset=UTF-8`.
//! - GSM text (no `coding`, or `coding=0`) with characters outside GSM 03.38:
//!   each becomes `?` (`á í ó ú` are lost; `é ñ Ñ ü Ü ¿ ¡ €` survive).
//! - more than `max-messages` (10) parts: silently cut to 10 parts
//!   (1,530 GSM or 670 UCS-2 characters).
//! - `to` is a space-separated list: `to=%2B1%20213` sends to `+1` and `213`.
//! - no `text`, or `text=`: an empty SMS is sent.
//! - `validity=abc` is ignored; `dlr-mask` without `dlr-url` is accepted
//!   (smsbox logs an error when the report comes back).
//!
//! ## Kannel delivery reports (`dlr-mask=31&dlr-url=…`)
//!
//! smsbox fetches `dlr-url` with a GET (HTTP/1.1, `User-Agent: Kannel/1.4.5`),
//! escapes expanded and URL-encoded. With
//! `dlr-url=http://127.0.0.1:P/dlr?ref=abc&type=%d&reply=%A` and fakesmsc:
//! ```text
//! GET /dlr?ref=abc&type=8&reply=ACK%2F     8 = accepted by the SMSC, %A = "ACK/"
//! GET /dlr?ref=abc&type=1&reply=           1 = delivered
//! ```
//! - One report per type per message, not per part, but in no fixed order (a
//!   two-part message got type 1 before type 8): a late 8 must not undo a 1.
//! - `dlr-mask=3` (delivered, failed) gives only the type 1 report.
//! - Other escapes: `%t` → `2026-11-23+15:47:50`, `%p` → `%2B12135550123`,
//!   `%P` → `INE`, `%i` → `fake`, `%I` → a UUID (different in each report).
//! - A fetch that fails (listener down) is logged (`Couldn't fetch <url>`) and
//!   never retried.
//!
//! ## fakesmsc log (what [`Kannel::received`] parses)
//!
//! One line per SMS *part*: `… DEBUG: Got message N: <FROM TO KIND PAYLOAD>`.
//! - GSM text: `<INE +12135550123 text Hola mundo>`, raw UTF-8 with spaces.
//! - UCS-2: `<INE +12135550123 ucs-2 %00V%00o%00t…%00%F3%00n%00+%00%A1…>`: the
//!   UTF-16BE bytes, URL-encoded (`+` is the byte 0x20, a plus is `%2B`).
//! - 8-bit (`coding=1`): `data` and the URL-encoded bytes.
//! - a part of a concatenated message: `<INE 6001 udh %05%00%03%08%02%01 data
//!   Registrate+para…>`: the UDH (IEI 0, reference 8, 2 parts, this is part 1)
//!   and the part's bytes, both URL-encoded. The coding is not shown (GSM parts
//!   carry UTF-8 text, UCS-2 parts UTF-16BE).
//! - The fake protocol is line based: a newline in GSM text ends the line and
//!   the rest arrives as a "message" of its own (`a\nb><c` logs
//!   `Got message 8: <INE 5554 text a>` then `Got message 9: <b><c>`); `\r`
//!   is dropped. A `from` containing spaces cannot be told apart from `to`.
//!
//! ## smtp-sink replies
//!
//! Defaults: greeting `220 smtp-sink ESMTP`; EHLO `250-smtp-sink`, `PIPELINING`,
//! `8BITMIME`, `AUTH PLAIN LOGIN`, `XCLIENT NAME HELO`, `XFORWARD …`,
//! `ENHANCEDSTATUSCODES`, `DSN`, then a bare `250 `; MAIL `250 2.1.0 Ok`; RCPT
//! `250 2.1.5 Ok`; DATA `354 End data with <CR><LF>.<CR><LF>`; end of data
//! `250 2.0.0 Ok`; RSET `250 2.1.0 Ok`; QUIT `221 Bye`. AUTH (any mechanism)
//! answers `250 2.0.0 Ok`, not 235, which real clients treat as a failure: send
//! no credentials to smtp-sink (or start it with `-a` to hide AUTH).
//!
//! | flags                                 | reply |
//! |---------------------------------------|-------|
//! | `-r rcpt`                             | RCPT `450 4.3.0 Error: command failed`; DATA then `503 5.5.1 Error: need RCPT command` |
//! | `-f rcpt`                             | RCPT `500 5.3.0 Error: command failed` |
//! | `-f rcpt -B "550 5.1.1 User unknown"` | RCPT `550 5.1.1 User unknown` |
//! | `-r rcpt -b "452 4.2.2 Mailbox full"` | RCPT `452 4.2.2 Mailbox full` |
//! | `-r mail`                             | MAIL `450 4.3.0 Error: command failed` |
//! | `-f data`                             | DATA `500 5.3.0 Error: command failed` |
//! | `-Q data` (also `rcpt`, `connect`)    | `421 4.0.0 Server closing connection`, then it disconnects |
//! | `-q data`                             | disconnects without a reply |
//! | `-A 0`                                | DATA `354`, then at once `550 This violates SMTP` and disconnect |
//! | `-r .` / `-f .`                       | end of data `450 4.3.0 …` / `500 5.3.0 …`, **but the message file is still written** |
//! | stopped                               | connection refused |
//!
//! `-M N` exits right after writing the N-th message, before its `250`.
//!
//! ## smtp-sink message files (`-d DIR/%H/%M.`)
//!
//! One file per mail transaction (`DIR/15/45.1fd6d18e`): created at MAIL,
//! filled and closed when the final `.` arrives (before the `250` goes out),
//! deleted when the transaction is aborted (RSET, QUIT, disconnect, no valid
//! RCPT). Content: smtp-sink's own header lines, then the message as received
//! with CRLF turned into LF and dot-stuffing removed, then one empty line (the
//! two `Received:` continuation lines start with a tab):
//! ```text
//! X-Client-Addr: 127.0.0.1
//! X-Client-Proto: ESMTP
//! X-Helo-Args: client.example
//! X-Mail-Args: <a@example.org> SIZE=100
//! X-Rcpt-Args: <b@example.com>
//! X-Rcpt-Args: <c@example.com> NOTIFY=NEVER
//! Received: from client.example ([127.0.0.1])
//!     by smtp-sink (smtp-sink) with ESMTP id 1fd6d18e;
//!     Mon, 23 Nov 2026 15:45:43 +0000 (UTC)
//! From: a@example.org
//! Subject: Hola á
//!
//! line1
//! .dotline
//!
//! ```

// Tests pick the helpers they need; the rest would warn.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";
const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";

/// Fresh ports per attempt: another process may take a "free" port before our
/// server binds it.
const START_ATTEMPTS: usize = 5;
/// Generous: CI machines build and test on two busy cores.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for a graceful stop before SIGKILL (Kannel's boxes took up to 2.5 s after traffic).
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);
pub(super) const POLL: Duration = Duration::from_millis(25);

const KANNEL_ADMIN_PASSWORD: &str = "adm";

/// `AVISO_TEST_POSTGRES_URL`, a server where tests may create databases.
/// Panics when it is unset: only tests ignored as needing PostgreSQL ask.
pub fn postgres_url() -> String {
    match std::env::var("AVISO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "needs PostgreSQL, but AVISO_TEST_POSTGRES_URL is not set: \
             run the suite with ops/test, or start a cluster with `eval \"$(ops/pg start DIR)\"`"
        ),
    }
}

/// A port that was free a moment ago on 127.0.0.1. Servers started on it must
/// cope with losing the race for it (the helpers here retry on fresh ports).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` within `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, POLL).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL);
    }
}

/// Minimal `GET` of an `http://127.0.0.1:PORT/…` URL over HTTP/1.0 (std only,
/// no keep-alive): the status code and the body.
pub fn http_get(url: &str) -> io::Result<(u16, String)> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {url}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("not an http:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("reply without a header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("reply without a status code"))?;
    Ok((status, body.to_string()))
}

/// Panics unless all of `peer`'s `binaries` exist: only tests ignored as
/// needing the peer start it, and one run on purpose must not pass unsent.
pub(super) fn require_installed(peer: &str, binaries: &[&str]) {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|b| !Path::new(b).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "needs {peer}, which is not installed (missing {}): install it, or run the suite with ops/test",
        missing.join(", ")
    );
}

pub(super) fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The last `lines` lines of a log, for panic messages.
fn log_tail(path: &Path, lines: usize) -> String {
    log_tail_from(path, 0, lines)
}

/// Like [`log_tail`], ignoring the first `offset` bytes (earlier runs' lines).
fn log_tail_from(path: &Path, offset: u64, lines: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn print_log_tails(logs: &[PathBuf]) {
    for log in logs {
        eprintln!(
            "---- last lines of {} ----\n{}",
            log.display(),
            log_tail(log, 20)
        );
    }
}

/// Calls `attempt` until it succeeds, up to [`START_ATTEMPTS`] times; panics
/// with every attempt's error.
pub(super) fn start_with_retries<T>(
    what: &str,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let mut errors = Vec::new();
    for _ in 0..START_ATTEMPTS {
        match attempt() {
            Ok(started) => return started,
            Err(error) => errors.push(error),
        }
    }
    panic!(
        "{what} did not start after {START_ATTEMPTS} attempts:\n{}",
        errors.join("\n")
    );
}

extern "C" {
    // From the C library std already links; std has no way to signal a process group.
    pub(super) fn kill(pid: i32, sig: i32) -> i32;
}
pub(super) const SIGKILL: i32 = 9;
pub(super) const SIGTERM: i32 = 15;
const SIGSTOP: i32 = 19;

/// A child process leading its own process group, stdout and stderr appended
/// to a log. Stopped (and reaped) on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// Where this run's output starts in the (appended) log.
    log_offset: u64,
    reaped: bool,
}

impl Proc {
    fn spawn(name: &'static str, mut command: Command, log: &Path) -> Proc {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {name}'s log {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup {}: {e}", log.display()));
        let log_offset = out.metadata().map(|m| m.len()).unwrap_or(0);
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Proc {
            name,
            child,
            log: log.to_owned(),
            log_offset,
            reaped: false,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Alive and not a zombie. Checked through /proc so that the child is not
    /// reaped: until it is, its id cannot be reused, so signalling the group is safe.
    fn running(&self) -> bool {
        if self.reaped {
            return false;
        }
        process_alive(self.pid())
    }

    fn signal_group(&self, signal: i32) {
        if !self.reaped {
            // SAFETY: plain syscall wrapper; the group id is our unreaped child's pid.
            unsafe { kill(-(self.pid() as i32), signal) };
        }
    }

    /// SIGTERM and up to `grace` to exit (none when zero), then SIGKILL to the
    /// whole group, then reap.
    fn stop(&mut self, grace: Duration) {
        if self.reaped {
            return;
        }
        if !grace.is_zero() {
            self.signal_group(SIGTERM);
            let deadline = Instant::now() + grace;
            while self.running() && Instant::now() < deadline {
                sleep(POLL);
            }
        }
        self.signal_group(SIGKILL);
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// Waits until this process listens on every port in `ports`.
    fn wait_listening(&self, ports: &[u16]) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ports.iter().all(|&port| listens_on(self.pid(), port)) {
                return Ok(());
            }
            let problem = if !self.running() {
                "exited"
            } else if Instant::now() >= deadline {
                "timed out"
            } else {
                sleep(POLL);
                continue;
            };
            return Err(format!(
                "{} {problem} before listening on 127.0.0.1 ports {ports:?}; log {}:\n{}",
                self.name,
                self.log.display(),
                log_tail_from(&self.log, self.log_offset, 15)
            ));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// Whether process `pid` exists and is not a zombie.
pub(super) fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether process `pid` holds a listening TCP socket on `port`. Asking /proc
/// rather than connecting tells our server apart from another one that won
/// the race for the port.
pub(super) fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // Columns: sl local_address rem_address st … inode; st 0A is LISTEN.
    let sockets: HashSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let local_port = columns.get(1)?.rsplit(':').next()?;
            let listening = columns.get(3) == Some(&"0A");
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| format!("socket:[{}]", columns.get(9).unwrap_or(&"")))
        })
        .collect();
    !sockets.is_empty()
        && open_files(pid)
            .iter()
            .any(|target| sockets.contains(target.to_string_lossy().as_ref()))
}

/// What the file descriptors of `pid` point to.
fn open_files(pid: u32) -> Vec<PathBuf> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .collect()
}

pub(super) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(_) => files.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    files
}

/// Postfix's `smtp-sink` on 127.0.0.1, keeping every message it accepts as a
/// file (see the module docs for the format and its fault-injection flags).
pub struct SmtpSink {
    dir: TempDir,
    port: u16,
    args: Vec<String>,
    proc: Option<Proc>,
}

impl SmtpSink {
    /// Starts `smtp-sink -u root -d DIR/%H/%M. EXTRA 127.0.0.1:PORT 1000`
    /// (`-u root` only when running as root, where smtp-sink requires it).
    /// Panics when smtp-sink is not installed.
    pub fn start(extra_args: &[&str]) -> SmtpSink {
        require_installed("smtp-sink", &[SMTP_SINK]);
        let dir = tempfile::Builder::new()
            .prefix("aviso-smtp-sink.")
            .tempdir()
            .expect("cannot create a temporary directory for smtp-sink");
        let mut sink = SmtpSink {
            dir,
            port: 0,
            args: owned(extra_args),
            proc: None,
        };
        start_with_retries("smtp-sink", || {
            sink.port = free_port();
            sink.spawn()
        });
        sink
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The raw content of every completed message file so far, oldest first.
    /// Transactions in progress are left out: smtp-sink still holds their file open.
    pub fn messages(&self) -> Vec<String> {
        // List before looking at open files: a file that closes in between is complete.
        let files = files_under(&self.mail_dir());
        let open: HashSet<PathBuf> = self
            .proc
            .as_ref()
            .map(|p| open_files(p.pid()))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut complete: Vec<(SystemTime, PathBuf, String)> = files
            .into_iter()
            .filter(|path| !open.contains(path))
            .filter_map(|path| {
                let modified = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
                // Unreadable: gone with an aborted transaction. Empty: created an
                // instant ago, its descriptor not yet visible in /proc.
                let content = fs::read(&path).ok()?;
                (!content.is_empty()).then(|| {
                    (
                        modified,
                        path,
                        String::from_utf8_lossy(&content).into_owned(),
                    )
                })
            })
            .collect();
        complete.sort();
        complete
            .into_iter()
            .map(|(_, _, content)| content)
            .collect()
    }

    pub fn message_count(&self) -> usize {
        self.messages().len()
    }

    /// When each completed message arrived (its file's last write), oldest first.
    pub fn arrival_times(&self) -> Vec<SystemTime> {
        let mut times: Vec<SystemTime> = files_under(&self.mail_dir())
            .into_iter()
            .filter_map(|path| fs::metadata(path).and_then(|m| m.modified()).ok())
            .collect();
        times.sort();
        times
    }

    /// Waits until at least `n` messages arrived or `timeout` passed; returns the count.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.message_count();
            if count >= n || Instant::now() >= deadline {
                return count;
            }
            sleep(POLL);
        }
    }

    /// Kills smtp-sink, as a crash would: connections drop, new ones are
    /// refused. Unfinished transactions leave no file behind.
    pub fn stop(&mut self) {
        let Some(mut proc) = self.proc.take() else {
            return;
        };
        // Frozen, smtp-sink cannot finish a message between our look and the kill.
        proc.signal_group(SIGSTOP);
        let unfinished: Vec<PathBuf> = open_files(proc.pid())
            .into_iter()
            .filter(|f| f.starts_with(self.mail_dir()))
            .collect();
        proc.stop(Duration::ZERO);
        for file in unfinished {
            let _ = fs::remove_file(file);
        }
    }

    /// Stops (if running) and starts again on the same port with new extra
    /// arguments; messages received so far are kept.
    pub fn restart(&mut self, extra_args: &[&str]) {
        self.stop();
        self.args = owned(extra_args);
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match self.spawn() {
                Ok(()) => return,
                Err(error) => errors.push(error),
            }
            sleep(Duration::from_millis(200));
        }
        panic!(
            "smtp-sink did not restart on port {} (taken by another process?):\n{}",
            self.port,
            errors.join("\n")
        );
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(SMTP_SINK);
        if running_as_root() {
            command.args(["-u", "root"]);
        }
        command
            .arg("-d")
            .arg(self.mail_dir().join("%H/%M."))
            .args(&self.args)
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("1000");
        let mut proc = Proc::spawn("smtp-sink", command, &self.log());
        match proc.wait_listening(&[self.port]) {
            Ok(()) => {
                self.proc = Some(proc);
                Ok(())
            }
            Err(error) => {
                proc.stop(Duration::ZERO);
                Err(error)
            }
        }
    }

    /// Resolved, to compare with the paths /proc shows for smtp-sink's open files.
    fn mail_dir(&self) -> PathBuf {
        fs::canonicalize(self.dir.path())
            .unwrap_or_else(|_| self.dir.path().to_owned())
            .join("mail")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("smtp-sink.log")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "smtp-sink on port {} had {} messages",
                self.port,
                self.message_count()
            );
            print_log_tails(&[self.log()]);
        }
        // Before the directory goes with the fields.
        self.stop();
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// How an SMS reached the fake SMS centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsCoding {
    /// GSM 03.38 text (`coding=0` or none).
    Gsm,
    /// UCS-2 (`coding=2`).
    Ucs2,
    /// 8-bit data (`coding=1`).
    Binary,
}

/// One SMS as fakesmsc received it, with the parts of a concatenated message
/// joined back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSms {
    pub from: String,
    pub to: String,
    pub coding: SmsCoding,
    /// How many SMS parts it took (1 unless Kannel split it).
    pub parts: usize,
    /// The payload bytes, URL-decoded and joined: UTF-8 for GSM text (where
    /// Kannel already turned characters outside GSM 03.38 into `?`), UTF-16BE
    /// for UCS-2.
    pub payload: Vec<u8>,
    /// The payload decoded, comparable with what was sent. For a joined
    /// message the coding is inferred (fakesmsc does not log it): UCS-2 when
    /// the payload has a zero byte, which any text with a Latin letter, digit
    /// or space has in UTF-16BE and GSM text never has. 8-bit data split into
    /// parts therefore shows as GSM.
    pub text: String,
}

/// Kannel on 127.0.0.1: bearerbox, smsbox (sendsms user `aviso`, password
/// `secret`, `max-messages = 10`, `concatenation = true`, no global sender, so
/// callers pass `from`) and fakesmsc as the SMS centre, all on free ports, with
/// the configuration, logs and bearerbox's message store in a temporary directory.
pub struct Kannel {
    dir: TempDir,
    ports: KannelPorts,
    bearerbox: Option<Proc>,
    smsbox: Option<Proc>,
    fakesmsc: Option<Proc>,
    /// The `get-url` of the `sms-service` that hands inbound SMS to aviso.
    inbound_url: Option<String>,
}

#[derive(Clone, Copy, Default)]
struct KannelPorts {
    admin: u16,
    smsbox: u16,
    smsc: u16,
    sendsms: u16,
}

impl Kannel {
    /// Starts bearerbox, smsbox and fakesmsc, in that order, and returns once
    /// sendsms listens and fakesmsc is connected. Panics when Kannel is not
    /// installed.
    pub fn start() -> Kannel {
        Kannel::start_with_inbound(None)
    }

    /// Like [`Kannel::start`], with an `sms-service` that fetches `get_url`
    /// (Kannel's escapes expanded) for every SMS fakesmsc sends, and sends no
    /// reply of its own (`max-messages = 0`). Without one, the service answers "ok".
    pub fn start_with_inbound(get_url: Option<&str>) -> Kannel {
        require_installed("Kannel", &[BEARERBOX, SMSBOX, FAKESMSC]);
        let dir = tempfile::Builder::new()
            .prefix("aviso-kannel.")
            .tempdir()
            .expect("cannot create a temporary directory for Kannel");
        let mut kannel = Kannel {
            dir,
            ports: KannelPorts::default(),
            bearerbox: None,
            smsbox: None,
            fakesmsc: None,
            inbound_url: get_url.map(str::to_string),
        };
        start_with_retries("Kannel", || {
            kannel.stop_all(Duration::ZERO);
            kannel.ports = KannelPorts {
                admin: free_port(),
                smsbox: free_port(),
                smsc: free_port(),
                sendsms: free_port(),
            };
            kannel.write_config();
            kannel.start_missing()
        });
        kannel
    }

    /// `http://127.0.0.1:PORT/cgi-bin/sendsms`
    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.ports.sendsms)
    }

    /// aviso's provider URL for this Kannel, sending as `INE`.
    pub fn provider_url(&self) -> String {
        format!("kannel://127.0.0.1:{}?from=INE", self.ports.sendsms)
    }

    /// bearerbox's `status.txt` (queues, SMSC connection state).
    pub fn admin_status(&self) -> String {
        self.try_admin_status().unwrap_or_else(|e| {
            panic!(
                "Kannel admin status on port {} failed: {e}; log {}",
                self.ports.admin,
                self.log("bearerbox").display()
            )
        })
    }

    /// Every SMS fakesmsc has received so far, in arrival order (a
    /// concatenated message counts once, when its last part has arrived).
    pub fn received(&self) -> Vec<FakeSms> {
        let log = fs::read(self.log("fakesmsc")).unwrap_or_default();
        parse_fakesmsc_log(&String::from_utf8_lossy(&log))
    }

    /// Waits until at least `n` SMS arrived or `timeout` passed; returns the count.
    pub fn wait_for_received(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.received().len();
            if count >= n || Instant::now() >= deadline {
                return count;
            }
            sleep(POLL);
        }
    }

    /// Stops smsbox (gracefully: what it accepted reaches bearerbox), so
    /// sendsms refuses connections until [`Kannel::start_sms_path`].
    pub fn stop_sms_path(&mut self) {
        if let Some(mut smsbox) = self.smsbox.take() {
            smsbox.stop(STOP_GRACE);
        }
    }

    /// Takes the whole gateway down: smsbox, fakesmsc, then bearerbox (which
    /// keeps queued messages in its store and sends them after
    /// [`Kannel::start_sms_path`]).
    pub fn stop_bearerbox(&mut self) {
        self.stop_all(STOP_GRACE);
    }

    /// Starts again, on the same ports, whatever is stopped; returns once
    /// sendsms listens and fakesmsc is connected.
    pub fn start_sms_path(&mut self) {
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match self.start_missing() {
                Ok(()) => return,
                Err(error) => errors.push(error),
            }
            sleep(Duration::from_millis(200));
        }
        panic!(
            "Kannel did not come back on its ports:\n{}",
            errors.join("\n")
        );
    }

    fn start_missing(&mut self) -> Result<(), String> {
        let ports = self.ports;
        if !self.bearerbox.as_ref().is_some_and(Proc::running) {
            // Without bearerbox the others exit (or are useless); restart them after it.
            self.stop_all(Duration::ZERO);
            self.bearerbox = Some(self.spawn_box(
                "bearerbox",
                BEARERBOX,
                &[ports.admin, ports.smsbox, ports.smsc],
            )?);
        }
        if !self.smsbox.as_ref().is_some_and(Proc::running) {
            self.smsbox = Some(self.spawn_box("smsbox", SMSBOX, &[ports.sendsms])?);
        }
        if !self.fakesmsc.as_ref().is_some_and(Proc::running) {
            // -m 0: send no messages towards Kannel, only receive.
            self.spawn_fakesmsc(0, "123 456 text hi");
        }
        self.wait_smsc_online()
    }

    /// fakesmsc, sending `max` messages like `message` ("FROM TO text WORDS")
    /// towards Kannel, one every 0.2 s, and receiving for as long as it runs.
    fn spawn_fakesmsc(&mut self, max: u32, message: &str) {
        let mut command = Command::new(FAKESMSC);
        command.args(["-H", "127.0.0.1", "-r", &self.ports.smsc.to_string()]);
        command.args(["-i", "0.2", "-m", &max.to_string(), message]);
        self.fakesmsc = Some(Proc::spawn("fakesmsc", command, &self.log("fakesmsc")));
    }

    /// A handset at `from` sends `text` to the short code 4567, as GSM text
    /// when it is ASCII, else as UCS-2: fakesmsc is restarted to send it
    /// once, and goes on receiving (what bearerbox delivers while it restarts
    /// waits in bearerbox's queue).
    pub fn send_mo(&mut self, from: &str, text: &str) {
        if let Some(mut fakesmsc) = self.fakesmsc.take() {
            fakesmsc.stop(Duration::ZERO);
        }
        let message = if text.is_ascii() {
            format!("{from} 4567 text {text}")
        } else {
            // fakesmsc's ucs2 payload: the UTF-16BE bytes, URL-encoded.
            let bytes: String = text
                .encode_utf16()
                .flat_map(u16::to_be_bytes)
                .map(|b| format!("%{b:02X}"))
                .collect();
            format!("{from} 4567 ucs2 {bytes}")
        };
        self.spawn_fakesmsc(1, &message);
        self.wait_smsc_online()
            .unwrap_or_else(|e| panic!("fakesmsc did not come back to send {text:?}: {e}"));
    }

    /// Starts a Kannel box. `-v 4` keeps its stderr to panics: the full log
    /// goes to the `log-file` set in kannel.conf, which is the same file.
    fn spawn_box(&self, name: &'static str, binary: &str, ports: &[u16]) -> Result<Proc, String> {
        let mut command = Command::new(binary);
        command.arg("-v").arg("4").arg(self.config());
        let mut proc = Proc::spawn(name, command, &self.log(name));
        match proc.wait_listening(ports) {
            Ok(()) => Ok(proc),
            Err(error) => {
                proc.stop(Duration::ZERO);
                Err(error)
            }
        }
    }

    fn wait_smsc_online(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let marker = format!("FAKE:{} (online", self.ports.smsc);
        loop {
            if self
                .try_admin_status()
                .is_ok_and(|status| status.contains(&marker))
            {
                return Ok(());
            }
            if Instant::now() >= deadline || !self.fakesmsc.as_ref().is_some_and(Proc::running) {
                return Err(format!(
                    "fakesmsc did not connect to bearerbox on port {}; logs {} and {}:\n{}",
                    self.ports.smsc,
                    self.log("fakesmsc").display(),
                    self.log("bearerbox").display(),
                    log_tail(&self.log("fakesmsc"), 10)
                ));
            }
            sleep(POLL);
        }
    }

    fn try_admin_status(&self) -> io::Result<String> {
        let url = format!(
            "http://127.0.0.1:{}/status.txt?password={KANNEL_ADMIN_PASSWORD}",
            self.ports.admin
        );
        http_get(&url).map(|(_, body)| body)
    }

    /// Stops in reverse start order.
    fn stop_all(&mut self, grace: Duration) {
        for proc in [
            self.fakesmsc.take(),
            self.smsbox.take(),
            self.bearerbox.take(),
        ]
        .iter_mut()
        .flatten()
        {
            proc.stop(grace);
        }
    }

    fn write_config(&self) {
        let ports = self.ports;
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let config = format!(
            r#"group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = {KANNEL_ADMIN_PASSWORD}
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
dlr-storage = internal
store-type = file
store-location = "{store}"
log-file = "{bearerbox_log}"
access-log = "{bearerbox_access}"

group = smsc
smsc = fake
smsc-id = fake
port = {smsc}
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{smsbox_log}"
access-log = "{smsbox_access}"

group = sendsms-user
username = aviso
password = secret
max-messages = 10
concatenation = true

group = sms-service
keyword = default
{service}
"#,
            service = match &self.inbound_url {
                Some(url) => format!("get-url = \"{url}\"\nmax-messages = 0\nomit-empty = true"),
                None => "text = \"ok\"".to_string(),
            },
            admin = ports.admin,
            smsbox = ports.smsbox,
            smsc = ports.smsc,
            sendsms = ports.sendsms,
            store = path("store"),
            bearerbox_log = self.log("bearerbox").display(),
            bearerbox_access = path("bearerbox-access.log"),
            smsbox_log = self.log("smsbox").display(),
            smsbox_access = path("smsbox-access.log"),
        );
        fs::write(self.config(), config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config().display()));
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("kannel.conf")
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_log_tails(&[
                self.log("bearerbox"),
                self.log("smsbox"),
                self.log("fakesmsc"),
            ]);
        }
        self.stop_all(Duration::ZERO);
    }
}

/// One `Got message` line of fakesmsc, split.
enum FakeLine {
    Whole(FakeSms),
    Part {
        from: String,
        to: String,
        udh: Vec<u8>,
        data: Vec<u8>,
    },
}

/// (from, to, reference, total) of a concatenated message.
type PartsKey = (String, String, u16, u8);

fn parse_fakesmsc_log(log: &str) -> Vec<FakeSms> {
    let mut received = Vec::new();
    // Parts of concatenated messages waiting for the rest, by sequence number.
    let mut pending: HashMap<PartsKey, BTreeMap<u8, Vec<u8>>> = HashMap::new();
    // Index in `received` of the GSM text a continuation line belongs to.
    let mut last_text = None;
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("Got message ") else {
            continue;
        };
        let Some((_, body)) = rest.split_once(": <") else {
            continue;
        };
        let body = body.strip_suffix('>').unwrap_or(body);
        match parse_fake_line(body) {
            Some(FakeLine::Whole(sms)) => {
                last_text = (sms.coding == SmsCoding::Gsm).then_some(received.len());
                received.push(sms);
            }
            Some(FakeLine::Part {
                from,
                to,
                udh,
                data,
            }) => {
                last_text = None;
                let Some((reference, total, seq)) = concatenation(&udh) else {
                    received.push(sms_from(from, to, SmsCoding::Binary, 1, data));
                    continue;
                };
                let key = (from, to, reference, total);
                let parts = pending.entry(key.clone()).or_default();
                parts.insert(seq, data);
                if parts.len() >= usize::from(total) {
                    let parts = pending.remove(&key).unwrap_or_default();
                    let payload: Vec<u8> = parts.into_values().flatten().collect();
                    let coding = if payload.contains(&0) {
                        SmsCoding::Ucs2
                    } else {
                        SmsCoding::Gsm
                    };
                    received.push(sms_from(key.0, key.1, coding, usize::from(total), payload));
                }
            }
            // The rest of a GSM text that contained a newline.
            None => {
                if let Some(sms) = last_text.and_then(|i| received.get_mut(i)) {
                    sms.payload.push(b'\n');
                    sms.payload.extend_from_slice(body.as_bytes());
                    sms.text = String::from_utf8_lossy(&sms.payload).into_owned();
                }
            }
        }
    }
    received
}

fn parse_fake_line(body: &str) -> Option<FakeLine> {
    let mut fields = body.splitn(4, ' ');
    let (from, to, kind) = (
        fields.next()?.to_string(),
        fields.next()?.to_string(),
        fields.next()?,
    );
    let rest = fields.next().unwrap_or("");
    Some(match kind {
        "text" => FakeLine::Whole(sms_from(
            from,
            to,
            SmsCoding::Gsm,
            1,
            rest.as_bytes().to_vec(),
        )),
        "ucs-2" => FakeLine::Whole(sms_from(from, to, SmsCoding::Ucs2, 1, url_decode(rest))),
        "data" => FakeLine::Whole(sms_from(from, to, SmsCoding::Binary, 1, url_decode(rest))),
        "udh" => {
            let (udh, data) = rest.split_once(" data ")?;
            FakeLine::Part {
                from,
                to,
                udh: url_decode(udh),
                data: url_decode(data),
            }
        }
        _ => return None,
    })
}

fn sms_from(
    from: String,
    to: String,
    coding: SmsCoding,
    parts: usize,
    payload: Vec<u8>,
) -> FakeSms {
    let text = match coding {
        SmsCoding::Ucs2 => {
            let units: Vec<u16> = payload
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        SmsCoding::Gsm | SmsCoding::Binary => String::from_utf8_lossy(&payload).into_owned(),
    };
    FakeSms {
        from,
        to,
        coding,
        parts,
        payload,
        text,
    }
}

/// (reference, total, sequence) from a concatenation element of a UDH:
/// IEI 0 (8-bit reference) or IEI 8 (16-bit reference).
fn concatenation(udh: &[u8]) -> Option<(u16, u8, u8)> {
    let end = (usize::from(*udh.first()?) + 1).min(udh.len());
    let mut i = 1;
    while i + 1 < end {
        let (iei, len) = (udh[i], usize::from(udh[i + 1]));
        let element = udh.get(i + 2..i + 2 + len)?;
        match (iei, element) {
            (0x00, &[reference, total, seq]) => return Some((u16::from(reference), total, seq)),
            (0x08, &[high, low, total, seq]) => {
                return Some((u16::from_be_bytes([high, low]), total, seq))
            }
            _ => i += 2 + len,
        }
    }
    None
}

/// Decodes Kannel's URL encoding (`+` is a space, `%XX` a byte).
fn url_decode(encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            (other, _) => {
                decoded.push(other);
                i += 1;
            }
        }
    }
    decoded
}

/// The parser against lines recorded from fakesmsc (no peers needed).
mod tests {
    use super::*;

    #[test]
    fn parses_fakesmsc_lines_of_every_kind() {
        let log = "\
2026-11-23 15:46:52 [8954] [0] INFO: fakesmsc starting
2026-11-23 15:46:55 [8954] [0] DEBUG: Got message 1: <INE +12135550123 text Hola mundo>
2026-11-23 15:46:55 [8954] [0] DEBUG: Got message 2: <INE +12135550123 ucs-2 %00V%00o%00t%00a%00c%00i%00%F3%00n%00+%00%A1%00s%00%ED%00!>
2026-11-23 15:47:08 [8954] [0] DEBUG: Got message 3: <INE 5554 text a>
2026-11-23 15:47:08 [8954] [0] DEBUG: Got message 4: <b><c>
2026-11-23 15:47:19 [8954] [0] DEBUG: Got message 5: <INE 6002 udh %05%00%03%09%02%01 data %00V%00o%00t%00a>
2026-11-23 15:47:19 [8954] [0] DEBUG: Got message 6: <INE 6001 udh %05%00%03%08%02%01 data Registrate+para>
2026-11-23 15:47:19 [8954] [0] DEBUG: Got message 7: <INE 6001 udh %05%00%03%08%02%02 data +votar%2B>
2026-11-23 15:47:19 [8954] [0] DEBUG: Got message 8: <INE 6002 udh %05%00%03%09%02%02 data %00c%00i%00%F3%00n>
2026-11-23 15:47:19 [8954] [0] DEBUG: Got message 9: <INE 6003 data Votaci%C3%B3n>
";
        let received = parse_fakesmsc_log(log);
        let summary: Vec<(&str, SmsCoding, usize, &str)> = received
            .iter()
            .map(|s| (s.to.as_str(), s.coding, s.parts, s.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("+12135550123", SmsCoding::Gsm, 1, "Hola mundo"),
                ("+12135550123", SmsCoding::Ucs2, 1, "Votación ¡sí!"),
                ("5554", SmsCoding::Gsm, 1, "a\nb><c"),
                ("6001", SmsCoding::Gsm, 2, "Registrate para votar+"),
                ("6002", SmsCoding::Ucs2, 2, "Votación"),
                ("6003", SmsCoding::Binary, 1, "Votación"),
            ]
        );
        assert!(received.iter().all(|s| s.from == "INE"));
    }
}
