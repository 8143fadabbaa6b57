//! The operations kit in `ops/`: the runbook runs as written, the Kannel
//! configurations start as written, the systemd units pass systemd's own
//! checks, and the secrets the units hand over reach aviso.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{aviso_bin, Workspace};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run_check(script: &str, args: &[&Path]) -> Output {
    Command::new(repo().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"))
}

fn assert_success(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        stdout
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
#[ignore = "needs root, smtp-sink and systemd-sysusers: run ops/test"]
fn runbook_runs_as_written() {
    let peers = Path::new("/usr/sbin/smtp-sink").exists()
        && Path::new("/usr/bin/unshare").exists()
        && Path::new("/usr/bin/systemd-sysusers").exists();
    assert!(
        peers && is_root(),
        "needs root, unshare, systemd-sysusers and smtp-sink: run ops/test"
    );
    let out = run_check("ops/runbook-check", &[&aviso_bin()]);
    let stdout = assert_success("ops/runbook-check", &out);
    let blocks = std::fs::read_to_string(repo().join("ops/RUNBOOK.md"))
        .unwrap()
        .lines()
        .filter(|line| *line == "```sh")
        .count();
    assert!(
        blocks >= 10,
        "the runbook lost its commands: {blocks} blocks"
    );
    assert!(
        stdout.contains(&format!("all {blocks} blocks of ops/RUNBOOK.md ran")),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs root and Kannel: run ops/test"]
fn kannel_configurations_start_as_written() {
    let peers = Path::new("/usr/sbin/bearerbox").exists()
        && Path::new("/usr/lib/kannel/test/fakesmsc").exists();
    assert!(peers && is_root(), "needs root and Kannel: run ops/test");
    let out = run_check("ops/kannel/check", &[]);
    let stdout = assert_success("ops/kannel/check", &out);
    assert!(
        stdout.contains("the fake SMS centre received the message"),
        "{stdout}"
    );
    assert!(
        stdout.contains("keeps trying its SMSC and queued"),
        "{stdout}"
    );
}

/// The units as installed, with ExecStart pointing at this build's binary
/// (systemd-analyze checks that the program exists).
fn installed_units(dir: &Path) -> Vec<PathBuf> {
    let mut units = Vec::new();
    for (name, instance) in [
        ("aviso-worker@.service", "aviso-worker@1.service"),
        ("aviso-serve.service", "aviso-serve.service"),
    ] {
        let text = std::fs::read_to_string(repo().join("ops/systemd").join(name)).unwrap();
        let text = text.replace("/usr/local/bin/aviso", &aviso_bin().display().to_string());
        std::fs::write(dir.join(name), &text).unwrap();
        if instance != name {
            std::fs::write(dir.join(instance), &text).unwrap();
        }
        units.push(dir.join(instance));
    }
    units
}

#[test]
#[ignore = "needs systemd-analyze: run ops/test"]
fn systemd_units_pass_systemd_analyze_and_are_hardened() {
    assert!(
        Path::new("/usr/bin/systemd-analyze").exists(),
        "needs systemd-analyze, which is not installed: run ops/test"
    );
    let dir = tempfile::tempdir().unwrap();
    for unit in installed_units(dir.path()) {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Warnings (an unknown key, a typo) leave the exit status at 0.
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("Failed to open") && !l.trim().is_empty())
            .collect();
        assert!(
            out.status.success() && complaints.is_empty(),
            "{}: {stderr}",
            unit.display()
        );
        let text = std::fs::read_to_string(&unit).unwrap();
        for directive in [
            "User=aviso",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "Restart=on-failure",
            "CapabilityBoundingSet=\n",
            "UMask=0077",
            "LoadCredential=database-url:/etc/aviso/credentials/database-url",
        ] {
            assert!(
                text.contains(directive),
                "{}: no {directive:?}",
                unit.display()
            );
        }
        assert!(
            !text.contains("PASSWORD="),
            "a secret in {}",
            unit.display()
        );
    }
}

/// `aviso` with the database URL only from the given variables.
fn without_url(ws: &Workspace, args: &[&str], vars: &[(&str, &Path)]) -> Output {
    let mut cmd = ws.command(args);
    cmd.env_remove("AVISO_DATABASE_URL")
        .env_remove("AVISO_DATABASE_URL_FILE")
        .env_remove("CREDENTIALS_DIRECTORY");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_database_url_comes_from_a_file_or_a_systemd_credential() {
    let ws = Workspace::new();
    let url = format!("sqlite://{}", ws.path().join("secret.db").display());
    let file = ws.write("database-url", format!("{url}\n"));
    let out = without_url(
        &ws,
        &["activity", "list"],
        &[("AVISO_DATABASE_URL_FILE", Path::new(&file))],
    );
    assert_success("AVISO_DATABASE_URL_FILE", &out);
    assert!(
        ws.path().join("secret.db").exists(),
        "the URL in the file was not used"
    );

    let creds = ws.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let other = format!("sqlite://{}", ws.path().join("credential.db").display());
    std::fs::write(creds.join("database-url"), other).unwrap();
    let out = without_url(
        &ws,
        &["activity", "list"],
        &[("CREDENTIALS_DIRECTORY", &creds)],
    );
    assert_success("CREDENTIALS_DIRECTORY", &out);
    assert!(
        ws.path().join("credential.db").exists(),
        "the credential was not used"
    );

    // A file named but unreadable is an error naming it, not a silent default.
    let missing = ws.path().join("no-such-file");
    let out = without_url(
        &ws,
        &["activity", "list"],
        &[("AVISO_DATABASE_URL_FILE", &missing)],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-file") && stderr.contains("AVISO_DATABASE_URL_FILE"),
        "{stderr}"
    );
    assert!(
        !ws.path().join("aviso.db").exists(),
        "fell back to the default database"
    );
}

#[test]
fn pause_all_pauses_every_running_or_scheduled_campaign_and_resume_keeps_their_time() {
    let mut ws = Workspace::new();
    let spool = ws.path().join("spool").display().to_string();
    ws.env("AVISO_EMAIL_PROVIDER", &format!("file://{spool}"));
    ws.ok(&[
        "contacts",
        "import",
        &crate::support::fixture("contacts_dirty.csv")
            .display()
            .to_string(),
        "--list",
        "registro",
    ]);
    ws.ok(&[
        "activity",
        "create",
        "--code",
        "MAIL",
        "--name",
        "Correos",
        "--channel",
        "email",
        "--programmed",
        "100",
    ]);
    let create = |at: &str| {
        ws.ok(&[
            "campaign",
            "create",
            "--activity",
            "MAIL",
            "--template",
            "registro_abierto",
            "--list",
            "registro",
            "--at",
            at,
        ]);
    };
    create("2030-01-15 10:00");
    create("2030-02-15 10:00");
    ws.ok(&[
        "campaign",
        "create",
        "--activity",
        "MAIL",
        "--template",
        "registro_abierto",
        "--list",
        "registro",
    ]);

    let out = ws.ok(&["campaign", "pause", "--all", "--reason", "texto equivocado"]);
    assert!(out.contains("paused 2 campaign(s): 1 2"), "{out}");
    assert!(out.contains("aviso campaign resume 1 2"), "{out}");
    let states = |ws: &Workspace| -> Vec<String> {
        let list = ws.json(&["campaign", "list", "--json"]);
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(states(&ws), ["paused", "paused", "draft"]);
    let status = ws.ok(&["campaign", "status", "1"]);
    assert!(status.contains("texto equivocado"), "{status}");

    ws.ok(&["campaign", "resume", "1", "2"]);
    assert_eq!(states(&ws), ["scheduled", "scheduled", "draft"]);
    let out = ws.ok(&["campaign", "pause", "--all"]);
    assert!(out.contains("paused 2"), "{out}");
    ws.ok(&["campaign", "resume", "1", "2"]);

    // An id and --all together, or neither, is a usage error.
    ws.fails(&["campaign", "pause", "1", "--all"], 2);
    ws.fails(&["campaign", "pause"], 2);
    ws.fails(&["campaign", "resume"], 2);
}
