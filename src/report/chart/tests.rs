use super::*;
use crate::report::{IndicatorRow, Measures};

fn row(
    key: &[Option<&str>],
    name: Option<&str>,
    programmed: Option<i64>,
    sent: i64,
) -> IndicatorRow {
    IndicatorRow {
        key: key.iter().map(|k| k.map(String::from)).collect(),
        activity_name: name.map(String::from),
        measures: Measures {
            programmed,
            sent,
            ..Measures::default()
        },
    }
}

fn report(keys: Vec<GroupKey>, rows: Vec<IndicatorRow>) -> Report {
    Report {
        keys,
        rows,
        total: Measures::default(),
        from: None,
        to: None,
        currency: None,
    }
}

#[test]
fn activity_and_month_make_one_panel_per_activity() {
    let r = report(
        vec![GroupKey::Activity, GroupKey::Month],
        vec![
            row(
                &[Some("SMS"), Some("2021-10")],
                Some("Mensajes"),
                Some(5),
                4,
            ),
            row(
                &[Some("SMS"), Some("2021-09")],
                Some("Mensajes"),
                Some(5),
                3,
            ),
            row(&[Some("CALLS"), Some("2021-09")], Some("Llamadas"), None, 7),
        ],
    );
    let p = panels(&r);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].caption.as_deref(), Some("SMS — Mensajes"));
    assert_eq!(
        p[0].bars
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>(),
        ["2021-09", "2021-10"]
    );
    assert_eq!(p[1].bars[0].programmed, None);
}

#[test]
fn months_are_summed_and_unknown_programmed_stays_unknown() {
    let r = report(
        vec![GroupKey::Month, GroupKey::Entity],
        vec![
            row(&[Some("2021-09"), Some("AGS")], None, Some(2), 1),
            row(&[Some("2021-09"), Some("OAX")], None, Some(3), 2),
            row(&[Some("2021-10"), Some("AGS")], None, None, 5),
            row(&[Some("2021-10"), None], None, Some(1), 1),
        ],
    );
    let p = panels(&r);
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].bars,
        vec![
            Bar {
                label: "2021-09".into(),
                programmed: Some(5),
                sent: 3
            },
            Bar {
                label: "2021-10".into(),
                programmed: None,
                sent: 6
            },
        ]
    );
}

#[test]
fn the_svg_names_every_category_and_escapes_text() {
    let r = report(
        vec![GroupKey::Activity],
        vec![
            row(
                &[Some("SMS-REG")],
                Some("<Envío> & \"más\""),
                Some(120_000),
                119_500,
            ),
            row(&[Some("TALLER")], Some("Talleres"), Some(2), 2),
            row(&[Some("X")], None, None, 3),
        ],
    );
    let svg = to_svg(&r, Language::Es).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("SMS-REG") && svg.contains("TALLER"));
    assert!(svg.contains("119,500") && svg.contains("120,000"));
    assert!(svg.contains("Programados") && svg.contains("Enviados"));
    let en = to_svg(&r, Language::En).unwrap();
    assert!(en.contains("Programmed") && en.contains("Sent against programmed"));
    let empty = to_svg(&report(vec![GroupKey::Activity], vec![]), Language::Es).unwrap();
    assert!(empty.contains("Sin datos"));
}
