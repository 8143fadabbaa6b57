//! `aviso contacts import`, `contacts count` and `suppress` through the CLI: every
//! row accounted for, every defect of the registry exports handled the way the
//! fixtures README describes, and nothing written when a file is refused.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::{fixture, Workspace};

/// The registry export's columns, in its order.
const HEADER: &str = "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma,\
                      tipo_credencial,poblacion,modalidad";

/// A registry export with `rows` after the header (LF line ends).
fn export(rows: &[&str]) -> String {
    let mut text = format!("{HEADER}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

/// Imports `file` into `list` with the rejects in `rejects.csv`; returns the JSON summary.
fn import(ws: &Workspace, file: &str, list: &str) -> Value {
    ws.json(&[
        "contacts",
        "import",
        file,
        "--list",
        list,
        "--rejects",
        "rejects.csv",
        "--json",
    ])
}

fn show(ws: &Workspace, id: &str) -> Value {
    ws.json(&["contacts", "show", id, "--json"])
}

fn exists(ws: &Workspace, id: &str) -> bool {
    ws.run(&["contacts", "show", id, "--json"]).status.success()
}

fn total(ws: &Workspace) -> i64 {
    ws.json(&["contacts", "count", "--json"])["total"]
        .as_i64()
        .unwrap()
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The rows of a CSV file (header first), as the csv crate reads them.
fn csv_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// The rejects file of the workspace: `line, id, field, reason` + original row.
struct Reject {
    line: u64,
    id: String,
    field: String,
    reason: String,
    original: Vec<String>,
}

fn rejects(ws: &Workspace) -> Vec<Reject> {
    let rows = csv_rows(&ws.path().join("rejects.csv"));
    assert_eq!(rows[0][..4], ["line", "id", "field", "reason"], "header");
    rows[1..]
        .iter()
        .map(|r| Reject {
            line: r[0].parse().unwrap(),
            id: r[1].clone(),
            field: r[2].clone(),
            reason: r[3].clone(),
            original: r[4..].to_vec(),
        })
        .collect()
}

/// The one reject of a file that should have exactly one.
fn only_reject(ws: &Workspace) -> Reject {
    let mut all = rejects(ws);
    assert_eq!(all.len(), 1, "expected one rejected row");
    all.remove(0)
}

// ---------------------------------------------------------------------------
// The fixtures: every row accounted for.

/// Imports a fixture twice into a fresh database and checks the accounting, the
/// rejects file against the input, and that the second import changes nothing.
fn fixture_is_fully_accounted_for(ws: Workspace, name: &str) {
    let path = fixture(name);
    let file = path.to_str().unwrap();
    let input = std::fs::read_to_string(&path).unwrap();
    let input_rows = csv_rows(&path);
    let data_rows = input_rows.len() as u64 - 1;

    let first = import(&ws, file, "registro");
    assert_eq!(n(&first, "read"), data_rows, "{first}");
    assert_eq!(
        n(&first, "imported")
            + n(&first, "updated")
            + n(&first, "unchanged")
            + n(&first, "rejected"),
        n(&first, "read"),
        "{first}"
    );
    // A fresh database: nothing to update, and everything not rejected is new.
    assert_eq!((n(&first, "updated"), n(&first, "unchanged")), (0, 0));
    assert_eq!(total(&ws), n(&first, "imported") as i64);

    // One line per rejected row, with the original columns of that physical line.
    let rejected = rejects(&ws);
    assert_eq!(rejected.len() as u64, n(&first, "rejected"));
    let header = &csv_rows(&ws.path().join("rejects.csv"))[0];
    assert_eq!(header[4..], input_rows[0][..], "original header follows");
    let physical: Vec<&str> = input.lines().collect();
    let lines: BTreeSet<u64> = rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines.len(), rejected.len(), "one line per rejected row");
    for r in &rejected {
        let text = physical[(r.line - 1) as usize];
        let cells: Vec<&str> = text.split(',').collect();
        assert_eq!(r.original, cells, "line {} of {name}", r.line);
        assert_eq!(r.id, cells[0].trim(), "line {}", r.line);
        assert!(
            !r.field.is_empty() && !r.reason.is_empty(),
            "line {}",
            r.line
        );
        assert!(!exists(&ws, &r.id) || r.field == "id_contacto");
    }

    let second = import(&ws, file, "registro");
    assert_eq!(n(&second, "read"), data_rows);
    assert_eq!(n(&second, "imported"), 0, "{second}");
    assert_eq!(n(&second, "updated"), 0, "{second}");
    assert_eq!(n(&second, "unchanged"), n(&first, "imported"), "{second}");
    assert_eq!(n(&second, "rejected"), n(&first, "rejected"));
}

#[test]
fn sample_fixture_accounts_for_every_row_and_reimport_changes_nothing() {
    fixture_is_fully_accounted_for(Workspace::new(), "contacts_sample.csv");
}

#[test]
fn dirty_fixture_accounts_for_every_row_and_reimport_changes_nothing() {
    fixture_is_fully_accounted_for(Workspace::new(), "contacts_dirty.csv");
}

#[test]
#[ignore = "needs PostgreSQL: run ops/test"]
fn sample_fixture_on_postgresql_accounts_for_every_row() {
    // Same contract on the scale-out backend (batches of 1,000 rows per statement).
    let url = crate::support::peers::postgres_url();
    fixture_is_fully_accounted_for(Workspace::postgres(&url), "contacts_sample.csv");
}

#[test]
fn dirty_fixture_rejects_every_kind_of_defect_it_contains() {
    // The fixtures README lists the defects that must be rejected; each must show
    // up in the rejects file of the dirty fixture, on the field it concerns.
    let ws = Workspace::new();
    import(&ws, fixture("contacts_dirty.csv").to_str().unwrap(), "d");
    let seen: BTreeSet<(String, String)> = rejects(&ws)
        .into_iter()
        .map(|r| {
            let kind = if r.reason.contains("repeated") {
                "repeated id"
            } else if r.reason.contains("letter 'O'") {
                "letter O"
            } else if r.reason.contains("no e-mail and no phone") {
                "no address"
            } else if r.field == "entidad" {
                "entity"
            } else if r.field == "email" {
                "e-mail"
            } else if r.field == "telefono" {
                "phone"
            } else {
                "other"
            };
            (kind.to_string(), r.field)
        })
        .collect();
    for want in [
        ("e-mail", "email"),
        ("phone", "telefono"),
        ("entity", "entidad"),
        ("no address", "email"),
        ("repeated id", "id_contacto"),
        ("letter O", "telefono"),
    ] {
        assert!(
            seen.contains(&(want.0.to_string(), want.1.to_string())),
            "no {want:?} reject; saw {seen:?}"
        );
    }
    assert!(!seen.iter().any(|(k, _)| k == "other"), "{seen:?}");
}

// ---------------------------------------------------------------------------
// One test per defect kind of the fixtures README.

/// A short row (a cell cut off, a stray line) is one rejected row, written to
/// the rejects file under its columns; a long one is kept whole. Before, the
/// rejects writer refused rows of another length and the whole import failed.
#[test]
fn rows_with_too_few_or_too_many_fields_are_rejected_whole_in_the_rejects_file() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
            "ú",
            "C3,Rosa,Peña,OAX,US,rosa@example.com,,,es,CPVE,primaria,postal,extra,más",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!(n(&s, "read"), n(&s, "imported") + n(&s, "rejected"), "{s}");
    assert!(n(&s, "rejected") >= 1, "{s}");
    let header = &csv_rows(&ws.path().join("rejects.csv"))[0];
    let all = rejects(&ws);
    let short = all.iter().find(|r| r.line == 3).expect("line 3 rejected");
    assert_eq!(
        short.original.len(),
        header.len() - 4,
        "padded under the header"
    );
    assert_eq!(short.original[0], "ú");
    if let Some(long) = all.iter().find(|r| r.line == 4) {
        assert_eq!(long.original.last().map(String::as_str), Some("más"));
    }
}

#[test]
fn malformed_email_is_rejected_with_line_field_and_reason() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,OAX,US,ana@,,,es,CPVE,primaria,postal",
            "C3,Rosa,Peña,OAX,US,juan@@example.com,,,es,CPVE,primaria,postal",
            "C4,Raúl,Cruz,OAX,US,a b@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!((n(&s, "imported"), n(&s, "rejected")), (1, 3), "{s}");
    let r = rejects(&ws);
    let got: Vec<(u64, &str, &str)> = r
        .iter()
        .map(|r| (r.line, r.id.as_str(), r.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [(3, "C2", "email"), (4, "C3", "email"), (5, "C4", "email")]
    );
    assert!(r[0].reason.contains("no domain"), "{}", r[0].reason);
    assert!(r[1].reason.contains("more than one @"), "{}", r[1].reason);
    assert!(r[2].reason.contains("space"), "{}", r[2].reason);
    assert!(!exists(&ws, "C2"));
}

#[test]
fn too_short_phone_is_rejected() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,,1,555012,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,OAX,US,,1,123,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!(n(&s, "rejected"), 2, "{s}");
    let r = rejects(&ws);
    assert_eq!((r[0].line, r[0].field.as_str()), (2, "telefono"));
    assert!(r[0].reason.contains("wrong length"), "{}", r[0].reason);
    assert_eq!((r[1].line, r[1].field.as_str()), (3, "telefono"));
    assert!(r[1].reason.contains("too short"), "{}", r[1].reason);
}

#[test]
fn unknown_entity_is_rejected_naming_the_value() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,ZAC,US,ana@example.com,,,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,XX,US,luis@example.com,,,es,CPVE,primaria,postal",
            "C3,Rosa,Peña,Jalisco,US,rosa@example.com,,,es,CPVE,primaria,postal",
            "C4,Raúl,Cruz,,US,raul@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!((n(&s, "imported"), n(&s, "rejected")), (0, 4), "{s}");
    for (r, value) in rejects(&ws).iter().zip(["ZAC", "XX", "Jalisco", "empty"]) {
        assert_eq!(r.field, "entidad");
        assert!(r.reason.contains(value), "{value}: {}", r.reason);
    }
}

#[test]
fn row_with_neither_email_nor_phone_is_rejected() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,,,,es,CPVE,primaria,postal",
            // Blanks only are no address either.
            "C2,Luis,Díaz,OAX,US,  ,1,  ,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!(n(&s, "rejected"), 2, "{s}");
    for r in rejects(&ws) {
        assert!(r.reason.contains("no e-mail and no phone"), "{}", r.reason);
    }
}

#[test]
fn repeated_id_is_rejected_with_the_line_of_its_first_appearance() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,OAX,US,luis@example.com,,,es,CPVE,primaria,postal",
            "C1,Otra,Persona,DGO,US,otra@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!((n(&s, "imported"), n(&s, "rejected")), (2, 1), "{s}");
    let r = only_reject(&ws);
    assert_eq!(
        (r.line, r.id.as_str(), r.field.as_str()),
        (4, "C1", "id_contacto")
    );
    assert!(r.reason.contains("first seen on line 2"), "{}", r.reason);
    // The first appearance is the one kept.
    assert_eq!(show(&ws, "C1")["first_name"], "Ana");
}

#[test]
fn repeated_id_is_rejected_even_when_its_first_appearance_was_rejected() {
    // Which of the two rows is right is for a person to decide: neither is kept.
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,,,,es,CPVE,primaria,postal",
            "C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!(n(&s, "rejected"), 2, "{s}");
    let r = rejects(&ws);
    assert!(
        r[1].reason.contains("first seen on line 2"),
        "{}",
        r[1].reason
    );
    assert!(!exists(&ws, "C1"));
}

#[test]
fn us_phone_with_punctuation_or_international_prefix_and_no_lada_becomes_e164() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,,,(210) 555-0196,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,OAX,US,,,+1 310.555.0147,es,CPVE,primaria,postal",
            "C3,Rosa,Peña,OAX,US,,,001 3125550166,es,CPVE,primaria,postal",
            "C4,Raúl,Cruz,OAX,US,,,+1 (720) 555-0179,es,CPVE,primaria,postal",
            // With the lada in its own column, punctuation is dropped as well.
            "C5,Eva,Gil,OAX,US,,1,559-555-0125,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!((n(&s, "imported"), n(&s, "rejected")), (5, 0), "{s}");
    for (id, e164) in [
        ("C1", "+12105550196"),
        ("C2", "+13105550147"),
        ("C3", "+13125550166"),
        ("C4", "+17205550179"),
        ("C5", "+15595550125"),
    ] {
        assert_eq!(show(&ws, id)["phone"], e164, "{id}");
    }
}

#[test]
fn entity_written_as_full_name_is_stored_as_its_code() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,Oaxaca,US,a@example.com,,,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,DURANGO,US,b@example.com,,,es,CPVE,primaria,postal",
            "C3,Rosa,Peña,aguascalientes,US,c@example.com,,,es,CPVE,primaria,postal",
            "C4,Raúl,Cruz,Tamaulipas,US,d@example.com,,,es,CPVE,primaria,postal",
            "C5,Eva,Gil,oax,US,e@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    assert_eq!(n(&import(&ws, &file, "l"), "imported"), 5);
    for (id, code) in [
        ("C1", "OAX"),
        ("C2", "DGO"),
        ("C3", "AGS"),
        ("C4", "TAM"),
        ("C5", "OAX"),
    ] {
        assert_eq!(show(&ws, id)["entity"], code, "{id}");
    }
}

#[test]
fn language_in_upper_case_is_accepted_and_stored_lower_case() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,a@example.com,,,EN,CPVE,primaria,postal",
            "C2,Luis,Díaz,OAX,US,b@example.com,,,ES,CPVE,primaria,postal",
            // An empty language is Spanish, the programme's default.
            "C3,Rosa,Peña,OAX,US,c@example.com,,,,CPVE,primaria,postal",
        ]),
    );
    assert_eq!(n(&import(&ws, &file, "l"), "imported"), 3);
    assert_eq!(show(&ws, "C1")["language"], "en");
    assert_eq!(show(&ws, "C2")["language"], "es");
    assert_eq!(show(&ws, "C3")["language"], "es");
}

#[test]
fn stray_spaces_are_trimmed_from_every_field() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            " C1 ,  Rosa ,  Núñez   Jiménez , OAX , US , rosa.3@example.net , 1 , 2135550123 , es , CPVE , primaria , electronica ",
        ]),
    );
    assert_eq!(n(&import(&ws, &file, "l"), "imported"), 1);
    assert_eq!(
        show(&ws, "C1"),
        json!({
            "id": "C1", "kind": "citizen", "first_name": "Rosa", "last_name": "Núñez Jiménez",
            "entity": "OAX", "country": "US", "email": "rosa.3@example.net",
            "phone": "+12135550123", "language": "es", "credential": "CPVE",
            "population": "primaria", "modality": "electronica", "lists": ["l"]
        })
    );
}

#[test]
fn letter_o_instead_of_zero_in_a_phone_is_rejected_saying_so() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&["C1,Ana,Ruiz,TAM,CA,,1,4035O50181,es,CPVE,terciaria,electronica"]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!(n(&s, "rejected"), 1);
    let r = only_reject(&ws);
    assert_eq!((r.line, r.field.as_str()), (2, "telefono"));
    assert!(
        r.reason.contains("letter 'O'") && r.reason.contains("zero"),
        "{}",
        r.reason
    );
}

#[test]
fn a_row_with_several_defects_is_one_reject_naming_every_field() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&["C1,Ana,Ruiz,ZAC,US,ana@,1,4035O50181,xx,CPVE,primaria,postal"]),
    );
    assert_eq!(n(&import(&ws, &file, "l"), "rejected"), 1);
    let r = only_reject(&ws);
    for field in ["entidad", "email", "telefono", "idioma"] {
        assert!(r.field.contains(field), "{field} not in {}", r.field);
    }
}

// ---------------------------------------------------------------------------
// File formats.

#[test]
fn english_headers_are_understood() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        "id,first_name,last_name,entity,country,email,country_code,phone,language\n\
         E1,Ann,Smith,oaxaca,us,ann@example.com,1,213-555-0125,EN\n",
    );
    let s = import(&ws, &file, "l");
    assert_eq!((n(&s, "imported"), n(&s, "rejected")), (1, 0), "{s}");
    let c = show(&ws, "E1");
    assert_eq!(
        (
            &c["first_name"],
            &c["last_name"],
            &c["entity"],
            &c["country"]
        ),
        (&json!("Ann"), &json!("Smith"), &json!("OAX"), &json!("US"))
    );
    assert_eq!(
        (&c["phone"], &c["language"]),
        (&json!("+12135550125"), &json!("en"))
    );
}

#[test]
fn unknown_columns_are_ignored_with_one_warning_naming_them() {
    let mut ws = Workspace::new();
    ws.env("AVISO_LOG", "warn");
    let file = ws.write(
        "c.csv",
        format!(
            "{HEADER},notas,fecha_alta\n\
             C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal,llamar,2021-09-01\n\
             C2,Luis,Díaz,OAX,US,luis@example.com,,,es,CPVE,primaria,postal,,2021-09-02\n"
        ),
    );
    let out = ws.run(&["contacts", "import", &file, "--list", "l", "--json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("ignor")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("notas") && warnings[0].contains("fecha_alta"),
        "{stderr}"
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n(&s, "imported"), 2);
}

#[test]
fn utf8_with_bom_is_read_without_the_bom() {
    let ws = Workspace::new();
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes
        .extend(export(&["C1,Jesús,Núñez,OAX,US,j@example.com,,,es,CPVE,primaria,postal"]).bytes());
    let file = ws.write("c.csv", bytes);
    // The BOM would otherwise glue itself to "id_contacto" and the column would be missing.
    assert_eq!(n(&import(&ws, &file, "l"), "imported"), 1);
    assert_eq!(show(&ws, "C1")["first_name"], "Jesús");
}

#[test]
fn crlf_line_ends_are_read_and_reject_lines_are_physical_lines() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        format!(
            "{HEADER}\r\n\
             C1,Ana,Ruiz,OAX,US,ana@example.com,,,en,CPVE,primaria,postal\r\n\
             C2,Luis,Díaz,ZAC,US,luis@example.com,,,es,CPVE,primaria,postal\r\n\
             C3,Rosa,Peña,OAX,US,rosa@,,,es,CPVE,primaria,postal\r\n"
        ),
    );
    let s = import(&ws, &file, "l");
    assert_eq!((n(&s, "imported"), n(&s, "rejected")), (1, 2), "{s}");
    // The last column must not keep the CR.
    assert_eq!(show(&ws, "C1")["modality"], "postal");
    let lines: Vec<(u64, String)> = rejects(&ws).into_iter().map(|r| (r.line, r.id)).collect();
    assert_eq!(lines, [(3, "C2".to_string()), (4, "C3".to_string())]);
}

#[test]
fn quoted_fields_with_commas_and_newlines_are_one_field_and_lines_stay_right() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,\"Ruiz, de la Cruz\",OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
            // A name spread over two physical lines (lines 3 and 4).
            "C2,\"Rosa\nMaría\",Peña,OAX,US,rosa@example.com,,,es,CPVE,primaria,postal",
            "C3,Raúl,Cruz,ZAC,US,raul@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let s = import(&ws, &file, "l");
    assert_eq!(
        (n(&s, "read"), n(&s, "imported"), n(&s, "rejected")),
        (3, 2, 1)
    );
    assert_eq!(show(&ws, "C1")["last_name"], "Ruiz, de la Cruz");
    // A line break in a name must never reach a message header: it becomes a space.
    assert_eq!(show(&ws, "C2")["first_name"], "Rosa María");
    let r = only_reject(&ws);
    assert_eq!((r.line, r.id.as_str()), (5, "C3"));
}

#[test]
fn quoted_multiline_field_in_a_crlf_file_keeps_lines_right() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        format!(
            "{HEADER}\r\n\
             C1,\"Ana\r\nLuisa\",Ruiz,OAX,US,ana@,,,es,CPVE,primaria,postal\r\n\
             C2,Luis,Díaz,ZAC,US,luis@example.com,,,es,CPVE,primaria,postal\r\n"
        ),
    );
    assert_eq!(n(&import(&ws, &file, "l"), "rejected"), 2);
    let lines: Vec<u64> = rejects(&ws).iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4]);
}

/// `José García` in Windows-1252: é = 0xE9, í = 0xED.
fn latin1_file(ws: &Workspace) -> String {
    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend(b"L1,Jos\xe9,Garc\xeda,OAX,US,jose@example.com,,,es,CPVE,primaria,postal\n");
    ws.write("latin1.csv", bytes)
}

#[test]
fn latin1_file_is_detected_and_accents_are_right() {
    let mut ws = Workspace::new();
    ws.env("AVISO_LOG", "warn");
    let file = latin1_file(&ws);
    let out = ws.run(&["contacts", "import", &file, "--list", "l", "--json"]);
    assert!(out.status.success(), "{out:?}");
    // Said out loud, so an operator can force another encoding if the guess is wrong.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Windows-1252"),
        "{out:?}"
    );
    let c = show(&ws, "L1");
    assert_eq!(
        (&c["first_name"], &c["last_name"]),
        (&json!("José"), &json!("García"))
    );
}

#[test]
fn latin1_file_is_read_with_encoding_latin1() {
    let ws = Workspace::new();
    let file = latin1_file(&ws);
    ws.ok(&[
        "contacts",
        "import",
        &file,
        "--list",
        "l",
        "--encoding",
        "latin1",
    ]);
    let c = show(&ws, "L1");
    assert_eq!(
        (&c["first_name"], &c["last_name"]),
        (&json!("José"), &json!("García"))
    );
}

#[test]
fn double_encoded_utf8_is_refused_before_anything_is_written() {
    let ws = Workspace::new();
    // Line 2 is fine; line 3 went through Latin-1 → UTF-8 twice ("GarcÃ­a").
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
            "C2,José,GarcÃ\u{AD}a,OAX,US,jose@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let err = ws.fails(&["contacts", "import", &file, "--list", "l"], 1);
    assert!(
        err.contains("line 3") && err.contains("twice") && err.contains("c.csv"),
        "{err}"
    );
    assert_eq!(total(&ws), 0);
    ws.fails(&["contacts", "count", "--list", "l"], 1);
}

#[test]
fn missing_required_column_fails_naming_it_and_writes_nothing() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        "id_contacto,nombre,entidad,email\nC1,Ana,OAX,ana@example.com\n",
    );
    let err = ws.fails(&["contacts", "import", &file, "--list", "l"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("\"pais\"") && err.contains("c.csv"), "{err}");
    assert_eq!(total(&ws), 0);
    ws.fails(&["contacts", "count", "--list", "l"], 1);
}

#[test]
fn empty_file_is_an_error_and_a_header_only_file_reads_nothing() {
    let ws = Workspace::new();
    let empty = ws.write("empty.csv", "");
    let err = ws.fails(&["contacts", "import", &empty, "--list", "l"], 1);
    assert!(err.contains("empty") && err.contains("empty.csv"), "{err}");

    let header_only = ws.write("header.csv", export(&[]));
    let s = import(&ws, &header_only, "l");
    assert_eq!(
        (n(&s, "read"), n(&s, "imported"), n(&s, "rejected")),
        (0, 0, 0)
    );
}

#[test]
fn dry_run_reports_what_would_change_and_writes_nothing() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,ZAC,US,luis@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let s = ws.json(&[
        "contacts",
        "import",
        &file,
        "--list",
        "l",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(s["dry_run"], true);
    assert_eq!((n(&s, "imported"), n(&s, "rejected")), (1, 1), "{s}");
    assert!(!exists(&ws, "C1"));
    assert_eq!(total(&ws), 0);
    ws.fails(&["contacts", "count", "--list", "l"], 1);

    // On a database that has the contacts, a dry run sees them as unchanged.
    import(&ws, &file, "l");
    let again = ws.json(&[
        "contacts",
        "import",
        &file,
        "--list",
        "other",
        "--dry-run",
        "--json",
    ]);
    assert_eq!((n(&again, "imported"), n(&again, "unchanged")), (0, 1));
    assert_eq!(show(&ws, "C1")["lists"], json!(["l"]));
}

#[test]
fn a_changed_row_updates_the_contact() {
    let ws = Workspace::new();
    let before = ws.write(
        "a.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,OAX,US,luis@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    let after = ws.write(
        "b.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,ana.ruiz@example.org,1,2135550123,en,CPVE,primaria,electronica",
            "C2,Luis,Díaz,OAX,US,luis@example.com,,,es,CPVE,primaria,postal",
        ]),
    );
    import(&ws, &before, "l");
    let s = import(&ws, &after, "l");
    assert_eq!(
        (n(&s, "imported"), n(&s, "updated"), n(&s, "unchanged")),
        (0, 1, 1),
        "{s}"
    );
    let c = show(&ws, "C1");
    assert_eq!(c["email"], "ana.ruiz@example.org");
    assert_eq!(c["phone"], "+12135550123");
    assert_eq!(c["language"], "en");
    assert_eq!(c["modality"], "electronica");
}

#[test]
fn list_membership_is_added_not_replaced() {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&["C1,Ana,Ruiz,OAX,US,ana@example.com,,,es,CPVE,primaria,postal"]),
    );
    import(&ws, &file, "registro");
    import(&ws, &file, "recordatorio");
    assert_eq!(
        show(&ws, "C1")["lists"],
        json!(["recordatorio", "registro"])
    );
    for list in ["registro", "recordatorio"] {
        let c = ws.json(&["contacts", "count", "--list", list, "--json"]);
        assert_eq!(c["total"], 1, "{list}");
    }
}

#[test]
fn osc_directory_is_imported_as_organisations_whose_entity_may_be_empty() {
    let ws = Workspace::new();
    let s = import(&ws, fixture("osc_directory.csv").to_str().unwrap(), "osc");
    assert_eq!(s["kind"], "organization");
    assert_eq!(
        (n(&s, "read"), n(&s, "imported"), n(&s, "rejected")),
        (170, 170, 0)
    );
    // An organisation is known by its name; this one gives no entity.
    let c = show(&ws, "OSC-asociacion-chee");
    assert_eq!(c["kind"], "organization");
    assert_eq!(c["first_name"], "Asociación Chee");
    assert_eq!(c["entity"], Value::Null);
    assert_eq!(c["email"], "contacto@asociacion-chee.example.org");
    assert_eq!(show(&ws, "OSC-amigos-de-tamaulipas")["entity"], "TAM");
    let count = ws.json(&[
        "contacts",
        "count",
        "--json",
        "--segment",
        "kind=organization",
    ]);
    assert_eq!(count["total"], 170);
    assert_eq!(count["by_channel"]["email"], 170);
}

// ---------------------------------------------------------------------------
// contacts count

/// Six contacts whose counts are easy to check by hand.
fn counted_workspace() -> Workspace {
    let ws = Workspace::new();
    let file = ws.write(
        "c.csv",
        export(&[
            "C1,Ana,Ruiz,OAX,US,a@example.com,1,2135550101,es,CPVE,primaria,postal",
            "C2,Luis,Díaz,OAX,US,,1,2135550102,en,CPVE,primaria,electronica",
            "C3,Rosa,Peña,DGO,CA,c@example.com,,,en,CPV,secundaria,postal",
            "C4,Raúl,Cruz,DGO,US,d@example.com,1,2135550104,es,CPVE,terciaria,postal",
            "C5,Eva,Gil,TAM,ES,e@example.com,34,650004957,es,CPVE,primaria,electronica",
            "C6,Iván,Sol,AGS,US,,1,2135550106,es,CPV,primaria,postal",
        ]),
    );
    assert_eq!(n(&import(&ws, &file, "registro"), "imported"), 6);
    ws
}

fn count(ws: &Workspace, segment: &str) -> Value {
    ws.json(&["contacts", "count", "--json", "--segment", segment])
}

#[test]
fn count_gives_totals_by_entity_and_channel() {
    let ws = counted_workspace();
    let c = ws.json(&["contacts", "count", "--list", "registro", "--json"]);
    assert_eq!(c["total"], 6);
    assert_eq!(
        c["by_entity"],
        json!({"AGS": 1, "DGO": 2, "OAX": 2, "TAM": 1})
    );
    assert_eq!(c["by_channel"], json!({"sms": 5, "email": 4}));
}

#[test]
fn count_segments_select_by_every_kind_of_term() {
    let ws = counted_workspace();
    for (segment, want) in [
        ("entity=OAX", 2),
        ("entity=OAX,DGO", 4),
        ("entidad=Durango", 2),
        ("country=US", 4),
        ("lang=en", 2),
        ("channel=sms", 5),
        ("channel=email", 4),
        ("channel=sms,email", 6),
        ("population=primaria", 4),
        ("credential=CPV", 2),
        ("modality=electronica", 2),
        ("entity=OAX,DGO channel=sms lang=es", 2),
        ("entity=AGS country=ES", 0),
    ] {
        assert_eq!(count(&ws, segment)["total"], want, "{segment}");
    }
    let sms_oax = count(&ws, "entity=OAX channel=sms");
    assert_eq!(sms_oax["by_channel"], json!({"sms": 2, "email": 1}));
}

#[test]
fn bad_segment_term_is_an_error_naming_the_term() {
    let ws = counted_workspace();
    for (segment, term) in [
        ("entity=ZAC", "entity=ZAC"),
        ("country=US colour=red", "colour=red"),
        ("channel=fax", "channel=fax"),
        ("lang", "lang"),
    ] {
        let err = ws.fails(&["contacts", "count", "--segment", segment], 1);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("{term:?}")), "{segment}: {err}");
    }
}

// ---------------------------------------------------------------------------
// suppress

#[test]
fn suppress_add_normalises_the_address_and_a_repeat_changes_nothing() {
    let ws = Workspace::new();
    let out = ws.ok(&[
        "suppress",
        "add",
        "+1 (213) 555-0123",
        "--reason",
        "deceased",
    ]);
    assert!(out.contains("suppressed"), "{out}");
    let out = ws.ok(&["suppress", "add", "+12135550123", "--reason", "deceased"]);
    assert!(out.contains("already suppressed"), "{out}");
    ws.ok(&[
        "suppress",
        "add",
        "Ana@Example.COM",
        "--reason",
        "opt_out",
        "--channel",
        "all",
        "--source",
        "call centre",
    ]);
    let list = ws.json(&["suppress", "list", "--json"]);
    let got: Vec<(String, String, String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap().to_string();
            (f("address"), f("scope"), f("reason"), f("source"))
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "+12135550123".into(),
                "sms".into(),
                "deceased".into(),
                "cli".into()
            ),
            (
                // Stored lower-cased: a suppression must stop `ANA@…` and `ana@…` alike.
                "ana@example.com".into(),
                "all".into(),
                "opt_out".into(),
                "call centre".into()
            ),
        ]
    );
}

#[test]
fn suppress_add_refuses_an_address_that_is_neither_email_nor_phone() {
    let ws = Workspace::new();
    let err = ws.fails(&["suppress", "add", "ana@", "--reason", "opt_out"], 1);
    assert!(err.contains("ana@"), "{err}");
    ws.fails(&["suppress", "add", "+1 555", "--reason", "opt_out"], 1);
    assert_eq!(ws.json(&["suppress", "list", "--json"]), json!([]));
}

#[test]
fn suppress_import_reports_a_bad_address_with_its_line_and_keeps_the_rest() {
    let ws = Workspace::new();
    let file = ws.write(
        "bajas.csv",
        "address,channel,reason\n\
         bob@example.com,email,hard_bounce\n\
         not-an-address,,\n\
         +1 213 555 0199,sms,\n\
         zed@example.com,,complaint\n\
         eve@example.com,fax,opt_out\n",
    );
    let out = ws.run(&["suppress", "import", &file, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bajas.csv, line 3"), "{stderr}");
    assert!(stderr.contains("bajas.csv, line 6"), "{stderr}");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s,
        json!({"read": 5, "added": 3, "already_present": 0, "rejected": 2})
    );

    let sms = ws.json(&["suppress", "list", "--channel", "sms", "--json"]);
    assert_eq!(sms.as_array().unwrap().len(), 1);
    assert_eq!(sms[0]["address"], "+12135550199");
    // An empty reason is an opt-out, an empty channel the address's own.
    assert_eq!(sms[0]["reason"], "opt_out");
    let email = ws.json(&["suppress", "list", "--channel", "email", "--json"]);
    let addresses: Vec<&str> = email
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["bob@example.com", "zed@example.com"]);
}

#[test]
fn suppress_import_of_crlf_file_reports_physical_lines() {
    let ws = Workspace::new();
    let file = ws.write(
        "bajas.csv",
        "address,channel,reason\r\nbob@example.com,email,hard_bounce\r\nnot-an-address,,\r\n",
    );
    let err = ws.fails(&["suppress", "import", &file], 1);
    assert!(err.contains("bajas.csv, line 3"), "{err}");
}

// ---------------------------------------------------------------------------
// Personal data in logs

#[test]
fn info_log_of_an_import_with_rejects_shows_no_phone_or_email() {
    let mut ws = Workspace::new();
    ws.env("AVISO_LOG", "info");
    let path = fixture("contacts_dirty.csv");
    let out = ws.run(&[
        "contacts",
        "import",
        path.to_str().unwrap(),
        "--list",
        "d",
        "--rejects",
        "rejects.csv",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rows = csv_rows(&path);
    let mut checked = 0;
    for row in &rows[1..] {
        let (email, phone) = (row[5].trim(), row[7].trim());
        if email.len() > 3 {
            assert!(
                !stderr.contains(email),
                "e-mail {email} in the log:\n{stderr}"
            );
            checked += 1;
        }
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 7 {
            assert!(
                !stderr.contains(phone),
                "phone {phone} in the log:\n{stderr}"
            );
            // Nor the national number in any form (E.164 included).
            assert!(
                !stderr.contains(&digits),
                "phone {digits} in the log:\n{stderr}"
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} addresses checked");
    // The rejects exist, so the log had something to leak.
    assert!(
        n(
            &ws.json(&[
                "contacts",
                "import",
                path.to_str().unwrap(),
                "--list",
                "d",
                "--json"
            ]),
            "rejected"
        ) > 0
    );
}
