//! The command contract: exit codes, one-line errors, help that teaches.

use crate::support::Workspace;

#[test]
fn usage_errors_exit_2_and_other_errors_exit_1() {
    let ws = Workspace::new();
    ws.fails(&["contacts", "import"], 2);
    ws.fails(&["no-such-command"], 2);
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
