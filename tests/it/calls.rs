//! The call centre's outcomes applied as suppressions: wrong numbers stop SMS,
//! deceased and "do not call again" stop every channel of the contact, and an
//! unknown outcome is reported with its line, never guessed.

use crate::support::Workspace;

#[test]
fn call_outcomes_become_the_right_suppressions() {
    let mut ws = Workspace::new();
    let outbox = format!("file://{}", ws.path().join("out").display());
    ws.env("AVISO_EMAIL_PROVIDER", &outbox);
    let contacts = ws.write(
        "contactos.csv",
        "id_contacto,nombre,entidad,pais,email,lada,telefono\n\
         A1,Ana,OAX,US,ana@example.org,1,2135550101\n\
         B2,Beto,DGO,US,beto@example.org,1,2135550102\n\
         C3,Caro,TAM,US,caro@example.org,1,2135550103\n\
         D4,Dani,AGS,US,dani@example.org,1,2135550104\n",
    );
    ws.ok(&["contacts", "import", &contacts, "--list", "l"]);
    let calls = ws.write(
        "llamadas.csv",
        "telefono,resultado\n\
         +1 213 555 0101,Número equivocado\n\
         (213) 555-0102,Ciudadano fallecido\n\
         2135550103,Solicitó no se le vuelva a llamar\n\
         2135550104,Buzón de voz\n\
         2135550104,Se mudó de ciudad\n\
         12,Número equivocado\n",
    );
    let out = ws.run(&[
        "suppress",
        "import-calls",
        &calls,
        "--country",
        "US",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unknown outcomes make the exit status 1"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 6: unknown outcome \"Se mudó de ciudad\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 7:"),
        "a bad phone is reported with its line: {stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["read"], 6);
    assert_eq!(summary["applied"], 3);
    assert_eq!(summary["no_action"], 1);
    assert_eq!(summary["not_applied"], 2);

    let list = ws.json(&["suppress", "list", "--json"]);
    let got: Vec<(String, String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap().to_string();
            (f("address"), f("scope"), f("reason"))
        })
        .collect();
    let expect =
        |a: &str, scope: &str, reason: &str| (a.to_string(), scope.to_string(), reason.to_string());
    for wanted in [
        expect("+12135550101", "sms", "invalid"),
        expect("+12135550102", "all", "deceased"),
        expect("beto@example.org", "all", "deceased"),
        expect("+12135550103", "all", "do_not_contact"),
        expect("caro@example.org", "all", "do_not_contact"),
    ] {
        assert!(got.contains(&wanted), "missing {wanted:?} in {got:?}");
    }
    assert_eq!(got.len(), 5, "voicemail changes nothing: {got:?}");

    // A later e-mail campaign leaves the deceased and the do-not-contact out,
    // but still writes to the person whose phone number was wrong.
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
        "4",
    ]);
    let created = ws.json(&[
        "campaign",
        "create",
        "--activity",
        "M",
        "--template",
        "registro_abierto",
        "--list",
        "l",
        "--json",
    ]);
    let run = ws.json(&["campaign", "start", &created["id"].to_string(), "--json"]);
    assert_eq!(run["total"], 4);
    assert_eq!(run["suppressed"], 2);
}
