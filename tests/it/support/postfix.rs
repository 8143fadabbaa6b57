//! A private, complete Postfix on 127.0.0.1 for the integration tests: the real
//! `smtpd` (PIPELINING, 8BITMIME, recipient restrictions), `cleanup`, `qmgr`
//! and `virtual`, delivering every recipient of [`DOMAIN`] into one Maildir,
//! so a test reads back what a mailbox would hold, not what a sink logged.
//!
//! Each instance lives in its own temporary directory (`conf/` with main.cf and
//! master.cf, `queue/`, `data/`, `mail/inbox/`, `maillog`) and is started with
//! `postfix -c DIR/conf start`; it never reads or writes /etc/postfix or the
//! default instance, listens on 127.0.0.1 only and looks nothing up in DNS.
//!
//! Found on Debian 12 (Postfix 3.7.11): `postfix -c` with an alternate
//! directory needs no `alternate_config_directories` when run as root (only
//! the set-gid `postdrop`/`sendmail` check it); `meta_directory` stays
//! /etc/postfix, where `postfix-files` (read-only) tells `post-install` which
//! queue directories to create; `maillog_file` needs the `postlog` service in
//! master.cf and a directory listed in `maillog_file_prefixes`; the master
//! daemonises into its own session, so it is stopped by `postfix stop` and by
//! its process group, not as our child. A 4xx RCPT in a pipeline is answered
//! `451 4.3.0 <a@example.org>: Recipient address rejected: …` and the DATA
//! that follows it `554 5.5.1 Error: no valid recipients`.
//!
//! Needs root (the master switches to the `postfix` user) and
//! /usr/sbin/postfix: without them `start` panics (the tests that use it are
//! ignored unless run on purpose, as ops/test does).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::peers::{
    files_under, free_port, kill, listens_on, print_log_tails, process_alive, require_installed,
    running_as_root, start_with_retries, POLL, SIGKILL, START_TIMEOUT, STOP_GRACE,
};

const POSTFIX: &str = "/usr/sbin/postfix";
const POSTFIX_DAEMONS: &str = "/usr/lib/postfix/sbin";

/// Every recipient of this domain is delivered into [`Postfix::messages`].
pub const DOMAIN: &str = "example.org";

/// A running private Postfix; stopped on drop (its log tail printed when the
/// test panicked).
pub struct Postfix {
    dir: TempDir,
    port: u16,
    settings: Vec<(String, String)>,
    master: Option<u32>,
}

impl Postfix {
    /// Starts an instance whose main.cf is the default below with `settings`
    /// (name, value) replacing or adding parameters, e.g.
    /// `("smtpd_discard_ehlo_keywords", "8bitmime")`.
    pub fn start(settings: &[(&str, &str)]) -> Postfix {
        require_installed("Postfix", &[POSTFIX, POSTFIX_DAEMONS]);
        assert!(
            running_as_root(),
            "needs root: a private Postfix switches to the postfix user (run ops/test)"
        );
        let dir = tempfile::Builder::new()
            .prefix("aviso-postfix.")
            .tempdir()
            .expect("cannot create a temporary directory for Postfix");
        // The postfix user must reach its queue, data and mail directories.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        let (uid, gid) = postfix_ids();
        for sub in ["conf", "queue"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        for sub in ["data", "mail"] {
            let path = dir.path().join(sub);
            fs::create_dir(&path).unwrap();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        let mut postfix = Postfix {
            dir,
            port: 0,
            settings: owned(settings),
            master: None,
        };
        start_with_retries("postfix", || {
            postfix.port = free_port();
            postfix.spawn()
        });
        postfix
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the instance and starts it again on the same port with new
    /// `settings`; the queue and the delivered mail are kept. Not `postfix
    /// reload`: its running `smtpd` processes keep the old settings until they
    /// exit "at their earliest convenience".
    pub fn restart(&mut self, settings: &[(&str, &str)]) {
        self.stop();
        self.settings = owned(settings);
        // The old smtpd processes may hold the port a moment longer.
        start_with_retries("Postfix (restarting on the same port)", || {
            self.spawn()
                .inspect_err(|_| sleep(Duration::from_millis(200)))
        });
    }

    /// Every delivered message file, oldest first (Maildir names start with
    /// the delivery time), as Postfix stored it: LF line ends, its own
    /// `Return-Path`, `Delivered-To` and `Received` lines first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .flat_map(|sub| files_under(&self.inbox().join(sub)))
            .collect();
        files.sort_by_key(|f| f.file_name().map(|n| n.to_owned()));
        files.iter().filter_map(|f| fs::read(f).ok()).collect()
    }

    /// Waits until at least `n` messages were delivered and nothing is left in
    /// the queue (so no late copy is still on its way), or `timeout` passed;
    /// returns the count.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.messages().len();
            if (count >= n && self.queue_is_empty()) || Instant::now() >= deadline {
                return count;
            }
            sleep(POLL);
        }
    }

    /// The instance's log so far (`maillog_file`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn queue_is_empty(&self) -> bool {
        ["maildrop", "incoming", "active", "deferred", "hold"]
            .iter()
            .all(|q| files_under(&self.dir.path().join("queue").join(q)).is_empty())
    }

    fn spawn(&mut self) -> Result<(), String> {
        fs::write(self.conf().join("main.cf"), self.main_cf()).unwrap();
        fs::write(self.conf().join("master.cf"), master_cf(self.port)).unwrap();
        let started = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.conf())
            .arg("start")
            .output()
            .map_err(|e| format!("cannot run {POSTFIX}: {e}"))?;
        let master = fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        let (true, Some(master)) = (started.status.success(), master) else {
            return Err(format!(
                "postfix start failed ({}): {}{}\n{}",
                started.status,
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr),
                self.log()
            ));
        };
        self.master = Some(master);
        let deadline = Instant::now() + START_TIMEOUT;
        while !listens_on(master, self.port) {
            if !process_alive(master) || Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "Postfix did not listen on 127.0.0.1:{}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            sleep(POLL);
        }
        Ok(())
    }

    /// `postfix stop`, then SIGKILL to whatever of the master's process group
    /// is left after [`STOP_GRACE`].
    fn stop(&mut self) {
        let Some(master) = self.master.take() else {
            return;
        };
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .output();
        let deadline = Instant::now() + STOP_GRACE;
        while process_alive(master) && Instant::now() < deadline {
            sleep(POLL);
        }
        if process_alive(master) {
            // SAFETY: plain syscall wrapper; the master leads its own process group.
            unsafe { kill(-(master as i32), SIGKILL) };
        }
    }

    fn main_cf(&self) -> String {
        let dir = self.dir.path().display();
        let (uid, gid) = postfix_ids();
        let mut cf: BTreeMap<String, String> = [
            ("compatibility_level", "3.6".to_string()),
            ("config_directory", format!("{dir}/conf")),
            ("queue_directory", format!("{dir}/queue")),
            ("data_directory", format!("{dir}/data")),
            ("meta_directory", "/etc/postfix".into()),
            ("shlib_directory", "/usr/lib/postfix".into()),
            ("daemon_directory", POSTFIX_DAEMONS.into()),
            ("command_directory", "/usr/sbin".into()),
            ("mail_owner", "postfix".into()),
            ("setgid_group", "postdrop".into()),
            ("syslog_name", "aviso-test-postfix".into()),
            ("maillog_file", format!("{dir}/maillog")),
            ("maillog_file_prefixes", format!("{dir}")),
            ("inet_interfaces", "127.0.0.1".into()),
            ("inet_protocols", "ipv4".into()),
            ("myhostname", "mx.aviso-test.example".into()),
            ("mydestination", String::new()),
            ("mynetworks", "127.0.0.0/8".into()),
            ("relayhost", String::new()),
            ("disable_dns_lookups", "yes".into()),
            ("smtp_host_lookup", "native".into()),
            ("smtpd_peername_lookup", "no".into()),
            ("alias_maps", String::new()),
            ("alias_database", String::new()),
            ("local_recipient_maps", String::new()),
            ("biff", "no".into()),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks, reject_unauth_destination".into(),
            ),
            ("smtpd_recipient_restrictions", String::new()),
            ("virtual_mailbox_domains", DOMAIN.into()),
            ("virtual_mailbox_base", format!("{dir}/mail")),
            // A trailing slash: Maildir, one file per message.
            ("virtual_mailbox_maps", "static:inbox/".into()),
            ("virtual_uid_maps", format!("static:{uid}")),
            ("virtual_gid_maps", format!("static:{gid}")),
            ("virtual_minimum_uid", uid.min(100).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (name, value) in &self.settings {
            cf.insert(name.clone(), value.clone());
        }
        cf.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("mail/inbox")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("maillog")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "Postfix on port {} delivered {} messages",
                self.port,
                self.messages().len()
            );
            print_log_tails(&[self.log_path()]);
        }
        // Before the directory goes with the fields.
        self.stop();
    }
}

/// Only what delivery to a virtual mailbox needs, without chroot (the queue
/// is in a temporary directory, not a prepared jail).
fn master_cf(port: u16) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         cleanup unix n - n - 0 cleanup\n\
         qmgr unix n - n 300 1 qmgr\n\
         rewrite unix - - n - - trivial-rewrite\n\
         bounce unix - - n - 0 bounce\n\
         defer unix - - n - 0 bounce\n\
         trace unix - - n - 0 bounce\n\
         error unix - - n - - error\n\
         retry unix - - n - - error\n\
         discard unix - - n - - discard\n\
         virtual unix - n n - - virtual\n\
         anvil unix - - n - 1 anvil\n\
         scache unix - - n - 1 scache\n\
         proxymap unix - - n - - proxymap\n\
         postlog unix-dgram n - n - 1 postlogd\n"
    )
}

/// The `postfix` user's uid and gid, from /etc/passwd.
fn postfix_ids() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postfix"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
                .flatten()
        })
        .expect("no postfix user in /etc/passwd (is Postfix installed?)")
}

fn owned(settings: &[(&str, &str)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The headers Postfix adds on delivery, removed: what remains is the message
/// as the client sent it (LF line ends).
pub fn as_sent(stored: &[u8]) -> &[u8] {
    let mut rest = stored;
    let added = [
        &b"Return-Path:"[..],
        b"X-Original-To:",
        b"Delivered-To:",
        b"Received:",
    ];
    loop {
        let line_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..line_end];
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if continuation || added.iter().any(|h| line.starts_with(h)) {
            rest = &rest[line_end..];
        } else {
            return rest;
        }
    }
}
