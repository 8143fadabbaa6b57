use chrono::NaiveDate;

use super::*;

/// Templates from (path, text) pairs, with the shipped data files.
fn renderer_of(extra: &[(&str, &str)]) -> Renderer {
    let mut files = std::collections::BTreeMap::new();
    for name in ["entities.toml", "samples.toml"] {
        let text =
            std::fs::read_to_string(format!("{}/templates/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        files.insert(std::path::PathBuf::from(name), text);
    }
    for (path, text) in extra {
        files.insert(path.into(), text.to_string());
    }
    Renderer::new(TemplateSet::from_files("test", files).unwrap()).unwrap()
}

/// A template written only in Spanish.
fn spanish_only() -> Renderer {
    renderer_of(&[
        (
            "solo_es/meta.toml",
            "description = \"x\"\nchannels = [\"sms\"]\nlanguages = [\"es\"]\n",
        ),
        ("solo_es/sms.es.hbs", "Hola {{contact.first_name}}"),
    ])
}

/// The same renderer with every file rendered through handlebars.
fn direct(mut r: Renderer) -> Renderer {
    r.skeletons = Skeletons::new(&[], []);
    r
}

#[test]
fn every_shipped_file_renders_by_class() {
    let r = Renderer::new(TemplateSet::built_in().unwrap()).unwrap();
    for def in r.set.templates.values() {
        for file in def.files.keys() {
            let key = key(&def.name, file);
            assert!(super::super::skeleton::usable(&r.skeletons, &key), "{key}");
        }
    }
}

fn recipients() -> impl proptest::strategy::Strategy<Value = Recipient> {
    use proptest::prelude::*;
    let text = prop_oneof![
        Just(None),
        Just(Some(String::new())),
        "[a-zA-Zñé<>&\"' \n]{1,12}".prop_map(Some),
    ];
    let pick = |options: &'static [&'static str]| {
        proptest::sample::select(options).prop_map(|s| s.to_string())
    };
    (
        (text.clone(), text, pick(&["citizen", "organization"])),
        (
            proptest::option::of(pick(&["AGS", "DGO", "OAX", "TAM", "XYZ"])),
            pick(&["es", "en", "fr"]),
            proptest::option::of(pick(&["US", "CA", "ES"])),
            proptest::option::of(pick(&["postal", "electronica"])),
        ),
    )
        .prop_map(
            |((first, last, kind), (entity, language, country, modality))| {
                let full_name = [first.as_deref(), last.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                Recipient {
                    id: "C1".into(),
                    kind,
                    first_name: first,
                    last_name: last,
                    full_name,
                    entity,
                    country,
                    language,
                    modality,
                    ..Recipient::default()
                }
            },
        )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// By class or through handlebars, every shipped template gives the same
    /// text, the same errors, for any recipient.
    #[test]
    fn rendering_by_class_gives_what_handlebars_gives(
        recipients in proptest::collection::vec(recipients(), 1..6),
        link in "https://x\\.example/u/[a-z&<\"]{0,6}",
    ) {
        let by_class = Renderer::new(TemplateSet::built_in().unwrap()).unwrap();
        let direct = direct(Renderer::new(TemplateSet::built_in().unwrap()).unwrap());
        let vars = serde_json::json!({"month": "2021-10", "packet_url": "https://x.example/p"});
        for r in &recipients {
            for def in by_class.set.templates.values() {
                for mode in [LangMode::Contact, LangMode::Both] {
                    if def.meta.channels.contains(&ChannelKind::Email) {
                        proptest::prop_assert_eq!(
                            by_class.render_email(&def.name, mode, r, &vars, &link),
                            direct.render_email(&def.name, mode, r, &vars, &link)
                        );
                    }
                    if def.meta.channels.contains(&ChannelKind::Sms) {
                        proptest::prop_assert_eq!(
                            by_class.render_sms(&def.name, mode, r, &vars),
                            direct.render_sms(&def.name, mode, r, &vars)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_name_given_to_a_helper_or_a_loop_is_rendered_for_each_recipient() {
    let meta = "description = \"x\"\nchannels = [\"sms\"]\nlanguages = [\"es\"]\n";
    let r = renderer_of(&[
            ("cmp/meta.toml", meta),
            (
                "cmp/sms.es.hbs",
                "{{#if (eq contact.first_name \"Ann\")}}Hi Ann{{else}}Hola {{contact.first_name}}{{/if}}",
            ),
            ("each/meta.toml", meta),
            (
                "each/sms.es.hbs",
                "{{#each contact}}{{#if (eq @key \"first_name\")}}[{{this}}]{{/if}}{{/each}}",
            ),
            ("plain/meta.toml", meta),
            ("plain/sms.es.hbs", "Hola {{contact.first_name}} ({{contact.kind}})"),
        ]);
    for (template, by_class) in [("cmp", false), ("each", false), ("plain", true)] {
        let key = key(template, "sms.es.hbs");
        assert_eq!(
            super::super::skeleton::usable(&r.skeletons, &key),
            by_class,
            "{key}"
        );
    }
    let text = |template: &str, name: &str| {
        let recipient = Recipient {
            first_name: Some(name.into()),
            kind: "citizen".into(),
            ..Recipient::default()
        };
        r.render_sms(template, LangMode::Es, &recipient, &Value::Null)
            .unwrap()
            .text
    };
    assert_eq!(text("cmp", "Ann"), "Hi Ann");
    assert_eq!(text("cmp", "Bob"), "Hola Bob");
    assert_eq!(text("each", "Ann"), "[Ann]");
    assert_eq!(text("each", "Bob"), "[Bob]");
    assert_eq!(text("plain", "Ann"), "Hola Ann (citizen)");
    assert_eq!(text("plain", "Bob"), "Hola Bob (citizen)");
}

/// A contact field the class cache does not know (here one `Recipient`
/// lacks, standing for a field added later, such as a phone) must never
/// be rendered once and sent to a whole class.
#[test]
fn a_contact_field_without_a_role_is_rendered_for_each_recipient() {
    let meta = "description = \"x\"\nchannels = [\"sms\"]\nlanguages = [\"es\"]\n";
    let r = renderer_of(&[
        ("nuevo/meta.toml", meta),
        (
            "nuevo/sms.es.hbs",
            "Hola {{contact.first_name}}, tu número: {{contact.phone}}",
        ),
        ("condicion/meta.toml", meta),
        (
            "condicion/sms.es.hbs",
            "{{#if contact.phone}}con{{else}}sin{{/if}} teléfono",
        ),
        ("conocido/meta.toml", meta),
        (
            "conocido/sms.es.hbs",
            "Hola {{contact.first_name}} ({{contact.entity}})",
        ),
    ]);
    for (template, by_class) in [("nuevo", false), ("condicion", false), ("conocido", true)] {
        let key = key(template, "sms.es.hbs");
        assert_eq!(
            super::super::skeleton::usable(&r.skeletons, &key),
            by_class,
            "{key}"
        );
    }
}

/// The class cache may never send one citizen's data to another: for every
/// field of `Recipient`, two recipients that differ only in it get their own
/// text. The fields are read from the serialised recipient, so a field added
/// later is covered without touching this test (and `full` below stops
/// compiling until it is given a value).
#[test]
fn recipients_that_differ_in_any_one_field_get_their_own_text() {
    let full = Recipient {
        id: "C1".into(),
        kind: "citizen".into(),
        first_name: Some("Ana".into()),
        last_name: Some("Ruiz".into()),
        full_name: "Ana Ruiz".into(),
        entity: Some("OAX".into()),
        country: Some("US".into()),
        language: "es".into(),
        credential: Some("si".into()),
        population: Some("residente".into()),
        modality: Some("postal".into()),
    };
    let base = serde_json::to_value(&full).unwrap();
    let fields: Vec<&String> = base.as_object().unwrap().keys().collect();
    let text: String = fields
        .iter()
        .map(|f| format!("{f}={{{{contact.{f}}}}};"))
        .collect();
    let meta = "description = \"x\"\nchannels = [\"sms\"]\nlanguages = [\"es\"]\n";
    let r = renderer_of(&[("todos/meta.toml", meta), ("todos/sms.es.hbs", &text)]);
    assert!(
        super::super::skeleton::usable(&r.skeletons, &key("todos", "sms.es.hbs")),
        "the test must go through the class cache"
    );
    let render = |recipient: &Recipient| {
        r.render_sms("todos", LangMode::Es, recipient, &Value::Null)
            .unwrap()
            .text
    };
    for field in fields {
        let mut changed = base.clone();
        changed[field] = Value::String(format!("otro-{field}"));
        let other: Recipient = serde_json::from_value(changed).unwrap();
        let first = render(&full);
        let second = render(&other);
        let own = format!("{field}={};", base[field].as_str().unwrap());
        assert!(first.contains(&own), "{field}: {first}");
        assert!(
            second.contains(&format!("{field}=otro-{field};")),
            "{field} leaked from one recipient to the next: {second}"
        );
    }
}

#[test]
fn campaigns_with_different_variables_get_their_own_text() {
    let r = renderer_of(&[
        (
            "v/meta.toml",
            "description = \"x\"\nchannels = [\"sms\"]\nlanguages = [\"es\"]\n",
        ),
        ("v/sms.es.hbs", "{{vars.when}}: {{contact.first_name}}"),
    ]);
    let recipient = Recipient {
        first_name: Some("Ann".into()),
        ..Recipient::default()
    };
    let text = |when: &str| {
        r.render_sms(
            "v",
            LangMode::Es,
            &recipient,
            &serde_json::json!({ "when": when }),
        )
        .unwrap()
        .text
    };
    assert_eq!(text("lunes"), "lunes: Ann");
    assert_eq!(text("martes"), "martes: Ann");
}

#[test]
fn a_missing_language_falls_back_to_spanish_and_says_so() {
    let r = spanish_only();
    let english = Recipient {
        first_name: Some("Ann".into()),
        language: "en".into(),
        ..Recipient::default()
    };
    let sms = r
        .render_sms("solo_es", LangMode::Contact, &english, &Value::Null)
        .unwrap();
    assert_eq!(
        (sms.text.as_str(), sms.language.as_str(), sms.fell_back),
        ("Hola Ann", "es", true)
    );
    let spanish = Recipient {
        language: "es".into(),
        ..english
    };
    assert!(
        !r.render_sms("solo_es", LangMode::Contact, &spanish, &Value::Null)
            .unwrap()
            .fell_back
    );
}

#[test]
fn a_missing_variable_is_an_error_not_a_blank() {
    let r = spanish_only();
    let err = r
        .render_sms("solo_es", LangMode::Es, &Recipient::default(), &Value::Null)
        .unwrap_err();
    assert!(err.to_string().contains("solo_es/sms.es.hbs"), "{err}");
}

#[test]
fn dates_in_each_language() {
    let d = NaiveDate::from_ymd_opt(2022, 6, 5).unwrap();
    assert_eq!(long_date(d, Language::Es), "5 de junio de 2022");
    assert_eq!(long_date(d, Language::En), "June 5, 2022");
}

#[test]
fn subjects_are_one_line() {
    assert_eq!(
        one_line("Hola\r\nBcc: x@example.com"),
        "Hola Bcc: x@example.com"
    );
}

#[test]
fn html_documents_join_inside_the_first_body() {
    let es = "<html><body><p>Hola</p></body></html>".to_string();
    let en = "<html><body class=\"x\"><p>Hi</p></body></html>".to_string();
    assert_eq!(
        join_html(&[es, en]),
        "<html><body><p>Hola</p><hr style=\"margin:32px 0\">\n<p>Hi</p></body></html>"
    );
}
