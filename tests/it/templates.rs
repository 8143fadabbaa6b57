//! Templates through the CLI: golden previews of every shipped template, SMS
//! counting as a handset counts, `templates check` naming the broken file, and
//! contact data that can neither inject markup nor headers.
//!
//! Golden files live in `tests/golden/templates/<name>.<channel>.<lang>.txt` and
//! hold the exact stdout of `aviso templates preview NAME --channel C --lang L`
//! with the sample contact. After an intended change to a template, rewrite them
//! with
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test --test it templates::golden
//! ```
//!
//! and review the diff (`git diff tests/golden`) before committing it.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::Workspace;

/// The templates of this repository (the ones built into the binary). The
/// previews read them from the directory, so the goldens follow the files even
/// when the binary's built-in copy was compiled from older ones.
fn shipped_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/templates")
}

/// `aviso --templates DIR templates preview ARGS…`, with the default public URL
/// (it is in the unsubscribe link) whatever the environment says.
fn preview(ws: &Workspace, templates: &Path, args: &[&str]) -> String {
    let dir = templates.to_str().unwrap();
    let mut all = vec!["--templates", dir, "templates", "preview"];
    all.extend_from_slice(args);
    let out = ws
        .command(&all)
        .env_remove("AVISO_PUBLIC_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "aviso {all:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn check_golden(name: &str, channel: &str, lang: &str) {
    let ws = Workspace::new();
    let got = preview(
        &ws,
        &shipped_templates(),
        &[name, "--channel", channel, "--lang", lang],
    );
    let file = golden_dir().join(format!("{name}.{channel}.{lang}.txt"));
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&file, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test --test it templates::golden",
            file.display()
        )
    });
    if got != want {
        let at = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
        panic!(
            "{} differs from the preview, first at line {}:\n  golden:  {:?}\n  preview: {:?}\n\
             (if the change is intended: UPDATE_GOLDEN=1 cargo test --test it templates::golden)",
            file.display(),
            at + 1,
            want.lines().nth(at),
            got.lines().nth(at)
        );
    }
}

macro_rules! golden {
    ($($test:ident: $name:literal $channel:literal $lang:literal;)*) => {
        /// Every golden file the tests below check, to compare with what ships.
        const GOLDEN: &[(&str, &str, &str)] = &[$(($name, $channel, $lang)),*];
        $(
            #[test]
            fn $test() {
                check_golden($name, $channel, $lang);
            }
        )*
    };
}

golden! {
    golden_registro_abierto_sms_es: "registro_abierto" "sms" "es";
    golden_registro_abierto_sms_en: "registro_abierto" "sms" "en";
    golden_registro_abierto_email_es: "registro_abierto" "email" "es";
    golden_registro_abierto_email_en: "registro_abierto" "email" "en";
    golden_recordatorio_voto_sms_es: "recordatorio_voto" "sms" "es";
    golden_recordatorio_voto_sms_en: "recordatorio_voto" "sms" "en";
    golden_recordatorio_voto_email_es: "recordatorio_voto" "email" "es";
    golden_recordatorio_voto_email_en: "recordatorio_voto" "email" "en";
    golden_subsane_sms_es: "subsane" "sms" "es";
    golden_subsane_sms_en: "subsane" "sms" "en";
    golden_subsane_email_es: "subsane" "email" "es";
    golden_subsane_email_en: "subsane" "email" "en";
    golden_carpeta_mensual_email_es: "carpeta_mensual" "email" "es";
    golden_carpeta_mensual_email_en: "carpeta_mensual" "email" "en";
    golden_carpeta_mensual_email_both: "carpeta_mensual" "email" "both";
    golden_respuesta_baja_sms_es: "respuesta_baja" "sms" "es";
    golden_respuesta_baja_sms_en: "respuesta_baja" "sms" "en";
    golden_respuesta_alta_sms_es: "respuesta_alta" "sms" "es";
    golden_respuesta_alta_sms_en: "respuesta_alta" "sms" "en";
}

#[test]
fn golden_files_cover_every_shipped_template_channel_and_language() {
    // A template added later must come with its golden files.
    let set = aviso::templates::TemplateSet::from_dir(&shipped_templates()).unwrap();
    let mut shipped = Vec::new();
    for def in set.templates.values() {
        for channel in &def.meta.channels {
            for lang in &def.meta.languages {
                shipped.push(format!("{}.{channel}.{}", def.name, lang.code()));
            }
            if def.meta.default_lang == aviso::templates::LangMode::Both {
                shipped.push(format!("{}.{channel}.both", def.name));
            }
        }
    }
    shipped.sort();
    let mut covered: Vec<String> = GOLDEN
        .iter()
        .map(|(n, c, l)| format!("{n}.{c}.{l}"))
        .collect();
    covered.sort();
    assert_eq!(covered, shipped);
    // And no golden file is left over from a template that is gone.
    let mut files: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|f| f.trim_end_matches(".txt").to_string())
        .collect();
    files.sort();
    assert_eq!(files, covered);
}

#[test]
fn built_in_templates_render_like_the_templates_directory() {
    // Run from a directory without ./templates, preview uses the binary's copy;
    // it must be the shipped one. (A stale build fails here: rebuild aviso.)
    let mut ws = Workspace::new();
    ws.env("AVISO_PUBLIC_URL", "https://avisos.example.org");
    let args = [
        "templates",
        "preview",
        "subsane",
        "--channel",
        "email",
        "--lang",
        "en",
    ];
    let built_in = ws.ok(&args);
    let from_dir = ws.ok(&[
        &["--templates", shipped_templates().to_str().unwrap()],
        &args[..],
    ]
    .concat());
    assert_eq!(built_in, from_dir);
}

// ---------------------------------------------------------------------------
// SMS counting (`aviso sms-info --json`)

fn sms_info(text: &str, transliterate: bool) -> Value {
    let ws = Workspace::new();
    let mut args = vec!["sms-info", text, "--json"];
    if transliterate {
        args.push("--transliterate");
    }
    ws.json(&args)
}

/// (encoding, units, segments) of a text.
fn measure(text: &str) -> (String, u64, u64) {
    let v = sms_info(text, false);
    (
        v["encoding"].as_str().unwrap().to_string(),
        v["units"].as_u64().unwrap(),
        v["segments"].as_u64().unwrap(),
    )
}

fn gsm(units: u64, segments: u64) -> (String, u64, u64) {
    ("GSM-7".into(), units, segments)
}

fn ucs2(units: u64, segments: u64) -> (String, u64, u64) {
    ("UCS-2".into(), units, segments)
}

#[test]
fn sms_gsm7_fits_160_in_one_part_and_153_per_part_after() {
    let a = |n: usize| "a".repeat(n);
    assert_eq!(measure(&a(160)), gsm(160, 1));
    assert_eq!(measure(&a(161)), gsm(161, 2));
    assert_eq!(measure(&a(306)), gsm(306, 2));
    assert_eq!(measure(&a(307)), gsm(307, 3));
}

#[test]
fn sms_ucs2_fits_70_in_one_part_and_67_per_part_after() {
    // One á (not in GSM-7) makes the whole text UCS-2.
    let text = |n: usize| format!("á{}", "a".repeat(n - 1));
    assert_eq!(measure(&text(70)), ucs2(70, 1));
    assert_eq!(measure(&text(71)), ucs2(71, 2));
    assert_eq!(measure(&text(134)), ucs2(134, 2));
    assert_eq!(measure(&text(135)), ucs2(135, 3));
}

#[test]
fn sms_extension_characters_count_twice() {
    assert_eq!(measure("[]{}"), gsm(8, 1));
    assert_eq!(measure(&"€".repeat(80)), gsm(160, 1));
    assert_eq!(measure(&"€".repeat(81)), gsm(162, 2));
    let v = sms_info("~|^\\", false);
    assert_eq!(
        (v["characters"].as_u64(), v["units"].as_u64()),
        (Some(4), Some(8))
    );
}

#[test]
fn sms_extension_character_is_never_split_across_a_part_boundary() {
    // 306 septets would be 2 parts of 153, but the escape sequence of "[" would
    // straddle the first boundary: it moves whole to part 2, and one more
    // septet spills into a third part.
    let text = format!("{}[{}", "a".repeat(152), "a".repeat(152));
    assert_eq!(measure(&text), gsm(306, 3));
    // Without the straddle, the same length is two parts.
    let text = format!("[{}", "a".repeat(304));
    assert_eq!(measure(&text), gsm(306, 2));
}

#[test]
fn sms_emoji_take_two_units_and_a_surrogate_pair_is_never_split() {
    assert_eq!(measure("😀"), ucs2(2, 1));
    assert_eq!(measure(&"😀".repeat(35)), ucs2(70, 1));
    assert_eq!(measure(&"😀".repeat(36)), ucs2(72, 2));
    // 134 units would be two parts of 67, but the pair at units 67-68 moves whole.
    let text = format!("{}😀{}", "á".repeat(66), "á".repeat(66));
    assert_eq!(measure(&text), ucs2(134, 3));
}

#[test]
fn sms_spanish_sentence_is_ucs2_unless_transliterated() {
    let text = "Votación 2022: ¿ya te registraste? Información en votoextranjero.mx, señora Núñez";
    let plain = sms_info(text, false);
    assert_eq!(plain["encoding"], "UCS-2");
    assert_eq!(plain["text"], text);
    let t = sms_info(text, true);
    assert_eq!(t["encoding"], "GSM-7");
    // á í ó ú lose their accent; ¿ ñ Ñ (in GSM-7) are kept as they are.
    assert_eq!(
        t["text"],
        "Votacion 2022: ¿ya te registraste? Informacion en votoextranjero.mx, señora Nuñez"
    );
    assert_eq!(t["units"], t["characters"]);
}

#[test]
fn sms_transliteration_maps_typography_and_keeps_what_has_no_mapping() {
    let t = sms_info("“Hola” — ya…", true);
    assert_eq!(
        t,
        json!({"encoding": "GSM-7", "units": 14, "segments": 1, "characters": 14, "text": "\"Hola\" - ya..."})
    );
    // An emoji has no GSM-7 form: it is kept, so the text stays UCS-2.
    let t = sms_info("Votación 😀", true);
    assert_eq!(t["encoding"], "UCS-2");
    assert_eq!(t["text"], "Votacion 😀");
}

// ---------------------------------------------------------------------------
// `templates check`: every problem names its file.

/// A copy of the shipped templates in the workspace, to break.
fn copy_templates(ws: &Workspace) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = ws.path().join("tpl");
    copy(&shipped_templates(), &dir);
    dir
}

fn edit(path: &Path, change: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    let changed = change(text.clone());
    assert_ne!(
        changed,
        text,
        "{}: the edit changed nothing",
        path.display()
    );
    std::fs::write(path, changed).unwrap();
}

/// Runs `templates check` on `dir`, which must fail; returns stderr.
fn check_fails(ws: &Workspace, dir: &Path) -> String {
    ws.fails(
        &["--templates", dir.to_str().unwrap(), "templates", "check"],
        1,
    )
}

/// The problem lines of a failed check that concern `file` (a path under `dir`).
fn problems_in<'a>(stderr: &'a str, dir: &Path, file: &str) -> Vec<&'a str> {
    let prefix = format!("{}/{file}: ", dir.display());
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

#[test]
fn check_passes_on_the_shipped_templates() {
    let ws = Workspace::new();
    let dir = shipped_templates();
    let out = ws.ok(&["--templates", dir.to_str().unwrap(), "templates", "check"]);
    assert!(
        out.contains("6 template(s)") && out.contains("all good"),
        "{out}"
    );
    // The copy built into the binary too.
    ws.ok(&["templates", "check"]);
}

#[test]
fn check_names_the_file_with_a_misspelt_variable() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    edit(&dir.join("registro_abierto/email.es.html.hbs"), |t| {
        t.replace("{{contact.first_name}}", "{{contact.frist_name}}")
    });
    let err = check_fails(&ws, &dir);
    let p = problems_in(&err, &dir, "registro_abierto/email.es.html.hbs");
    assert_eq!(p.len(), 1, "{err}");
    assert!(
        p[0].contains("frist_name") && p[0].contains("line "),
        "{err}"
    );
}

#[test]
fn check_names_a_missing_language_file() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    std::fs::remove_file(dir.join("subsane/sms.en.hbs")).unwrap();
    let err = check_fails(&ws, &dir);
    let p = problems_in(&err, &dir, "subsane/sms.en.hbs");
    assert_eq!(p.len(), 1, "{err}");
    assert!(p[0].contains("missing"), "{err}");
}

#[test]
fn check_names_an_sms_over_max_segments() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    edit(&dir.join("registro_abierto/sms.es.hbs"), |t| {
        format!("{t} {}", "Más información en votoextranjero.mx. ".repeat(5))
    });
    let err = check_fails(&ws, &dir);
    let p = problems_in(&err, &dir, "registro_abierto/sms.es.hbs");
    assert!(!p.is_empty(), "{err}");
    assert!(p.iter().all(|l| l.contains("max_segments = 2")), "{err}");
}

#[test]
fn check_names_an_undeclared_campaign_variable() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    edit(&dir.join("registro_abierto/sms.en.hbs"), |t| {
        format!("{t} {{{{vars.x}}}}")
    });
    let err = check_fails(&ws, &dir);
    let p = problems_in(&err, &dir, "registro_abierto/sms.en.hbs");
    assert_eq!(p.len(), 1, "{err}");
    assert!(
        p[0].contains("vars.x") && p[0].contains("not declared"),
        "{err}"
    );
}

#[test]
fn check_names_meta_toml_when_a_declared_variable_is_unused() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    edit(&dir.join("registro_abierto/meta.toml"), |t| {
        format!("{t}\n[variables.office_hours]\ndescription = \"unused\"\nsample = \"9-18\"\n")
    });
    let err = check_fails(&ws, &dir);
    let p = problems_in(&err, &dir, "registro_abierto/meta.toml");
    assert_eq!(p.len(), 1, "{err}");
    assert!(
        p[0].contains("office_hours") && p[0].contains("no file uses"),
        "{err}"
    );
}

#[test]
fn check_names_an_email_without_the_footer() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    edit(&dir.join("subsane/email.es.html.hbs"), |t| {
        t.replace("{{> footer_es_html}}", "")
    });
    let err = check_fails(&ws, &dir);
    let p = problems_in(&err, &dir, "subsane/email.es.html.hbs");
    assert!(!p.is_empty(), "{err}");
    assert!(p[0].contains("footer"), "{err}");
}

#[test]
fn check_names_the_file_and_line_of_a_handlebars_syntax_error() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    let file = dir.join("recordatorio_voto/email.en.txt.hbs");
    std::fs::write(
        &file,
        "Hello,\n\nDear {{contact.first_name}\n{{> footer_en_txt}}\n",
    )
    .unwrap();
    let err = check_fails(&ws, &dir);
    let p = problems_in(&err, &dir, "recordatorio_voto/email.en.txt.hbs");
    assert_eq!(p.len(), 1, "{err}");
    assert!(p[0].contains("line 3"), "{err}");
}

#[test]
fn check_of_one_template_ignores_the_others() {
    let ws = Workspace::new();
    let dir = copy_templates(&ws);
    std::fs::remove_file(dir.join("subsane/sms.en.hbs")).unwrap();
    let d = dir.to_str().unwrap();
    ws.ok(&["--templates", d, "templates", "check", "registro_abierto"]);
    ws.fails(&["--templates", d, "templates", "check", "subsane"], 1);
    let err = ws.fails(&["--templates", d, "templates", "check", "nope"], 1);
    assert!(err.contains("no such template"), "{err}");
}

// ---------------------------------------------------------------------------
// Previews for stored contacts; contact data cannot inject markup or headers.

const HEADER: &str = "id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma,\
                      tipo_credencial,poblacion,modalidad";

fn import(ws: &Workspace, rows: &str) {
    let file = ws.write("c.csv", format!("{HEADER}\n{rows}"));
    ws.ok(&["contacts", "import", &file, "--list", "l"]);
}

/// A previewed e-mail: its header lines, text part and HTML part.
struct Previewed {
    headers: Vec<String>,
    text: String,
    html: String,
}

fn split_email(out: &str) -> Previewed {
    const TEXT: &str = "\n--- text/plain; charset=utf-8 ---\n";
    const HTML: &str = "\n--- text/html; charset=utf-8 ---\n";
    let (head, rest) = out.split_once(TEXT).expect("a text part");
    let (text, html) = rest.split_once(HTML).expect("an HTML part");
    Previewed {
        headers: head.lines().map(str::to_string).collect(),
        text: text.to_string(),
        html: html.to_string(),
    }
}

#[test]
fn preview_renders_for_a_stored_contact() {
    let ws = Workspace::new();
    import(
        &ws,
        "C1,Lupita,Soto,DGO,US,lupita@example.com,1,2135550123,en,CPVE,primaria,electronica\n",
    );
    let dir = shipped_templates();
    let out = preview(
        &ws,
        &dir,
        &[
            "recordatorio_voto",
            "--channel",
            "email",
            "--lang",
            "en",
            "--contact",
            "C1",
        ],
    );
    let email = split_email(&out);
    assert!(email.text.contains("Hello Lupita,"), "{}", email.text);
    assert!(email.text.contains("Durango"), "{}", email.text);
    // Electronic modality: the online branch, not the postal one.
    assert!(email.text.contains("HOW TO VOTE ONLINE"), "{}", email.text);
    assert!(email
        .headers
        .iter()
        .any(|h| h.starts_with("Subject: Vote online")));
    let sms = preview(
        &ws,
        &dir,
        &[
            "recordatorio_voto",
            "--channel",
            "sms",
            "--lang",
            "en",
            "--contact",
            "C1",
        ],
    );
    assert!(sms.starts_with("SMS (en): GSM-7"), "{sms}");
    let err = ws.fails(
        &[
            "templates",
            "preview",
            "recordatorio_voto",
            "--channel",
            "sms",
            "--contact",
            "NOPE",
        ],
        1,
    );
    assert!(err.contains("\"NOPE\" does not exist"), "{err}");
}

#[test]
fn markup_in_a_name_is_escaped_in_html_and_kept_as_is_in_text() {
    let ws = Workspace::new();
    import(
        &ws,
        "X1,<b>Ana</b>,O'Neil & Co,OAX,US,ana@example.com,,,es,CPVE,primaria,postal\n",
    );
    let out = preview(
        &ws,
        &shipped_templates(),
        &[
            "registro_abierto",
            "--channel",
            "email",
            "--lang",
            "es",
            "--contact",
            "X1",
        ],
    );
    let email = split_email(&out);
    assert!(email.text.contains("Hola, <b>Ana</b>:"), "{}", email.text);
    assert!(
        email.html.contains("Hola, &lt;b&gt;Ana&lt;/b&gt;:"),
        "{}",
        email.html
    );
    assert!(!email.html.contains("<b>Ana</b>"), "{}", email.html);
}

/// A template directory whose Spanish subject carries the contact's name, the
/// case where a line break in a name would reach a header.
fn templates_with_name_in_subject(ws: &Workspace) -> PathBuf {
    let dir = copy_templates(ws);
    std::fs::write(
        dir.join("registro_abierto/email.es.subject.hbs"),
        "{{contact.first_name}}, regístrate para votar desde el extranjero",
    )
    .unwrap();
    dir
}

/// The five header lines of a preview, one line each, no other.
fn assert_clean_headers(email: &Previewed) {
    let names: Vec<&str> = email
        .headers
        .iter()
        .map(|h| h.split_once(": ").map(|(n, _)| n).unwrap_or(h))
        .collect();
    assert_eq!(
        names,
        [
            "From",
            "Subject",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "Content-Language"
        ],
        "{:?}",
        email.headers
    );
}

#[test]
fn line_break_in_an_imported_name_never_breaks_the_subject() {
    let ws = Workspace::new();
    import(
        &ws,
        "X2,\"Ana\r\nBcc: evil@example.com\",Pérez,OAX,US,ana@example.com,,,es,CPVE,primaria,postal\n",
    );
    let dir = templates_with_name_in_subject(&ws);
    let out = preview(
        &ws,
        &dir,
        &[
            "registro_abierto",
            "--channel",
            "email",
            "--lang",
            "es",
            "--contact",
            "X2",
        ],
    );
    let email = split_email(&out);
    assert_clean_headers(&email);
    assert_eq!(
        email.headers[1],
        "Subject: Ana Bcc: evil@example.com, regístrate para votar desde el extranjero"
    );
}

#[test]
fn line_break_in_a_stored_name_never_breaks_the_subject_or_the_mime_headers() {
    // Written to the store directly, bypassing the import's clean-up: the
    // renderer and the MIME builder must hold on their own.
    use aviso::contacts::Contact;
    use aviso::domain::{ContactKind, EmailAddress, Entity, Language};

    let ws = Workspace::new();
    let evil = "Ana\r\nBcc: evil@example.com\r\n\r\n<script>";
    let contact = Contact {
        id: "X3".into(),
        kind: ContactKind::Citizen,
        first_name: Some(evil.into()),
        last_name: None,
        entity: Some(Entity::Oax),
        country: None,
        email: Some(EmailAddress::parse("ana@example.com").unwrap()),
        phone: None,
        language: Language::Es,
        credential: None,
        population: None,
        modality: None,
    };
    let url = ws.database_url.clone();
    let stored = contact.clone();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let store = aviso::store::open(&url).await.unwrap();
            let list = store.ensure_list("l", 0).await.unwrap();
            store
                .save_contacts(list, &[stored], &["X3".to_string()], 0)
                .await
                .unwrap();
        });
    let dir = templates_with_name_in_subject(&ws);
    let out = preview(
        &ws,
        &dir,
        &[
            "registro_abierto",
            "--channel",
            "email",
            "--lang",
            "es",
            "--contact",
            "X3",
        ],
    );
    let email = split_email(&out);
    assert_clean_headers(&email);
    assert!(
        email.headers[1].starts_with("Subject: Ana Bcc: evil@example.com <script>, regístrate"),
        "{}",
        email.headers[1]
    );

    // The message as sent: no header line of its own for the injected Bcc.
    let set = aviso::templates::TemplateSet::from_dir(&dir).unwrap();
    let renderer = aviso::templates::Renderer::new(set).unwrap();
    let recipient = aviso::templates::Recipient::from_contact(&contact);
    let rendered = renderer
        .render_email(
            "registro_abierto",
            aviso::templates::LangMode::Es,
            &recipient,
            &json!({}),
            "https://example.invalid/u/T",
        )
        .unwrap();
    let from: lettre::message::Mailbox = "INE <avisos@example.org>".parse().unwrap();
    let to = EmailAddress::parse("ana@example.com").unwrap();
    let headers = aviso::templates::EmailHeaders {
        from: &from,
        to: &to,
        to_name: Some(evil),
        message_id: "<m1@example.org>",
        unsubscribe_url: Some("https://example.invalid/u/T"),
        eight_bit: false,
    };
    let message = aviso::templates::build_email(&rendered, &headers, &[]).unwrap();
    let raw = String::from_utf8(message.formatted()).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap();
    // Every line is a folded continuation or one of the headers aviso writes.
    let expected = [
        "From",
        "To",
        "Subject",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "MIME-Version",
        "Date",
        "Content-Type",
    ];
    for line in head.split("\r\n") {
        let folded = line.starts_with([' ', '\t']);
        let name = line.split(':').next().unwrap_or("");
        assert!(
            folded || expected.contains(&name),
            "header line {line:?} in:\n{head}"
        );
    }
    assert_eq!(head.matches("\r\nSubject:").count(), 1, "{head}");
}
