//! The command contract: exit codes, one-line errors, help that teaches.

use crate::support::Workspace;

#[test]
fn usage_errors_exit_2_and_other_errors_exit_1() {
    let ws = Workspace::new();
    ws.fails(&["contacts", "import"], 2);
    ws.fails(&["no-such-command"], 2);
    let threads = ws.fails(&["worker", "--threads", "0"], 2);
    assert!(threads.contains("0 is not in 1..=256"), "{threads}");
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
