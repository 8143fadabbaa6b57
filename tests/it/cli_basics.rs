//! The command contract: exit codes, one-line errors, help that teaches.

use crate::support::Workspace;

#[test]
fn usage_errors_exit_2_and_other_errors_exit_1() {
    let ws = Workspace::new();
    ws.fails(&["contacts", "import"], 2);
    ws.fails(&["no-such-command"], 2);
    let threads = ws.fails(&["worker", "--threads", "0"], 2);
    assert!(threads.contains("0 is not in 1..=256"), "{threads}");
    let nice = ws.fails(&["worker", "--db-nice", "20"], 2);
    assert!(nice.contains("20 is not in 0..=19"), "{nice}");
    let scheduling = ws.fails(&["worker", "--scheduling", "fast"], 2);
    assert!(
        scheduling.contains("possible values: batch, normal"),
        "{scheduling}"
    );
    let err = ws.fails(&["contacts", "show", "NOPE"], 1);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: contact \"NOPE\" does not exist"),
        "{err}"
    );
}

#[test]
fn help_lists_the_commands() {
    let ws = Workspace::new();
    let help = ws.ok(&["--help"]);
    for cmd in [
        "contacts",
        "suppress",
        "templates",
        "sms-info",
        "activity",
        "campaign",
        "worker",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}:\n{help}");
    }
}

#[test]
fn sqlite_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    ws.ok(&["contacts", "count"]);
    let mode = std::fs::metadata(ws.path().join("aviso.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "database mode {mode:o}");
}

#[test]
fn a_campaign_can_name_a_provider_from_the_configuration() {
    let mut ws = Workspace::new();
    let default_box = format!("file://{}", ws.path().join("default").display());
    ws.env("AVISO_EMAIL_PROVIDER", &default_box);
    ws.write(
        "aviso.toml",
        "[providers.respaldo]\nchannel = \"email\"\nurl = \"file://respaldo\"\n",
    );
    let csv = ws.write(
        "c.csv",
        "id_contacto,nombre,entidad,pais,email\nP1,Ana,OAX,US,ana@example.org\n",
    );
    ws.ok(&["contacts", "import", &csv, "--list", "l"]);
    ws.ok(&[
        "activity",
        "create",
        "--code",
        "M",
        "--name",
        "Correo",
        "--channel",
        "email",
        "--programmed",
        "1",
    ]);
    let err = ws.fails(
        &[
            "campaign",
            "create",
            "--activity",
            "M",
            "--template",
            "registro_abierto",
            "--list",
            "l",
            "--provider",
            "nope",
        ],
        1,
    );
    assert!(err.contains("provider \"nope\" is not configured"), "{err}");
    let created = ws.json(&[
        "campaign",
        "create",
        "--activity",
        "M",
        "--template",
        "registro_abierto",
        "--list",
        "l",
        "--provider",
        "respaldo",
        "--json",
    ]);
    ws.ok(&["campaign", "start", &created["id"].to_string()]);
    ws.ok(&["worker", "--once"]);
    // Relative file:// paths are read from the configuration file's directory.
    let sent: Vec<_> = std::fs::read_dir(ws.path().join("respaldo"))
        .unwrap()
        .collect();
    assert_eq!(sent.len(), 1, "the named provider carried the message");
    assert!(
        !ws.path().join("default").exists()
            || std::fs::read_dir(ws.path().join("default"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// Each thread's name, nice value and scheduling policy, from /proc.
#[cfg(target_os = "linux")]
fn thread_scheduling(pid: u32) -> Vec<(String, i32, u32)> {
    let fields = |stat: &str| -> Option<(i32, u32)> {
        // Fields after the name, which is in parentheses: state is the
        // first, nice the seventeenth, policy the thirty-ninth.
        let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        Some((rest.get(16)?.parse().ok()?, rest.get(38)?.parse().ok()?))
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let (nice, policy) = fields(&stat)?;
            Some((name.trim().to_string(), nice, policy))
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn the_worker_niced_its_database_work_and_not_its_sends_and_runs_as_a_batch_job() {
    use crate::support::{eventually, Background};
    const SCHED_BATCH: u32 = 3;
    // With `normal`, the worker keeps the policy it inherits from the tests.
    let (_, own, own_policy) = thread_scheduling(std::process::id())[0].clone();
    for (args, database, policy) in [
        (&[][..], (own + 10).min(19), SCHED_BATCH),
        (
            &["--db-nice", "0", "--scheduling", "normal"][..],
            own,
            own_policy,
        ),
    ] {
        let ws = Workspace::new();
        let mut command = ws.command(&[&["worker"], args].concat());
        command
            .env_remove("AVISO_WORKER_DB_NICE")
            .env_remove("AVISO_WORKER_SCHEDULING");
        let worker = Background::spawn(command);
        let mut threads = Vec::new();
        let started = eventually(std::time::Duration::from_secs(20), || {
            threads = thread_scheduling(worker.0.id());
            threads
                .iter()
                .any(|(name, _, _)| name.starts_with("sqlx-sqlite"))
        });
        assert!(started, "no database thread: {threads:?}");
        let mut checked = (0, 0);
        for (name, nice, thread_policy) in &threads {
            assert_eq!(*thread_policy, policy, "{name} in {args:?}: {threads:?}");
            let expected = match name.as_str() {
                n if n.starts_with("tokio-rt-worker") => {
                    checked.0 += 1;
                    own
                }
                n if n.starts_with("sqlx-sqlite") || n == "aviso" => {
                    checked.1 += 1;
                    database
                }
                _ => continue,
            };
            assert_eq!(*nice, expected, "{name} in {args:?}: {threads:?}");
        }
        assert!(
            checked.0 >= 1 && checked.1 >= 2,
            "a sending thread, the main thread and SQLite's: {threads:?}"
        );
        worker.stop();
    }
}
