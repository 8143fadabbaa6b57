use std::io::{BufReader, Read};

use super::reading::double_encoded;
use super::*;

#[test]
fn organisation_ids_are_slugs_of_the_name() {
    assert_eq!(organization_id("Asociación Chee"), "OSC-asociacion-chee");
    assert_eq!(
        organization_id("  Amigos de  Tamaulipas, A.C. "),
        "OSC-amigos-de-tamaulipas-a-c"
    );
}

#[test]
fn seen_ids_remember_the_first_line_through_growth() {
    let mut seen = SeenIds::default();
    for line in 0..5000u64 {
        assert_eq!(seen.first_line(&format!("C{line:08}"), line + 2), None);
        if line == 100 {
            seen.expect(3000);
        }
    }
    assert_eq!(seen.first_line("C00000000", 9000), Some(2));
    assert_eq!(seen.first_line("C00004999", 9001), Some(5001));
    assert_eq!(seen.first_line("Ñandú-ü", 9002), None);
    assert_eq!(seen.first_line("Ñandú-ü", 9003), Some(9002));
    assert_eq!(seen.first_line("", 9004), None);
    assert_eq!(seen.first_line("", 9005), Some(9004));
    let long = "x".repeat(70_000);
    assert_eq!(seen.first_line(&long, 9006), None);
    assert_eq!(seen.first_line(&long, 9007), None);
}

#[test]
fn names_lose_line_breaks_and_runs_of_spaces() {
    assert_eq!(clean_text("  Rosa \r\n María\t"), "Rosa María");
    assert_eq!(clean_text("Rosa María"), "Rosa María");
    assert_eq!(clean_text("Rosa\u{a0}María "), "Rosa María");
    assert_eq!(clean_text(""), "");
}

proptest::proptest! {
    #[test]
    fn clean_text_is_the_words_joined_by_one_space(s in "[a é\t\r\n\u{a0}\u{2003}\u{7}]{0,12}") {
        let words: Vec<&str> = s
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect();
        proptest::prop_assert_eq!(clean_text(&s), words.join(" "));
    }
}

#[test]
fn crlf_is_read_as_lf_wherever_the_chunks_split() {
    let input = b"a\r\nb\rc\r\n\r\n\"d\r\ne\"\r";
    for capacity in [1, 2, 3, 64] {
        let mut out = String::new();
        CrlfAsLf::new(BufReader::with_capacity(capacity, &input[..]))
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "a\nb\rc\n\n\"d\ne\"\r", "capacity {capacity}");
    }
}

#[test]
fn double_encoding_is_spotted() {
    assert_eq!(double_encoded("García"), None);
    // "García" converted to UTF-8 twice: Ã then a soft hyphen.
    assert_eq!(
        double_encoded("Garc\u{c3}\u{ad}a").as_deref(),
        Some("\u{c3}\u{ad}")
    );
    assert!(double_encoded("\u{c2}\u{bf}Dónde?").is_some());
    assert_eq!(double_encoded("S\u{c3}O PAULO"), None);
}

#[test]
fn headers_in_english_are_understood() {
    for h in [
        "id",
        "first_name",
        "last_name",
        "entity",
        "country",
        "email",
        "country_code",
        "phone",
        "language",
    ] {
        assert!(Field::from_header(h).is_some(), "{h}");
    }
    assert_eq!(Field::from_header(" País "), Some(Field::Country));
    assert_eq!(Field::from_header("Teléfono"), Some(Field::Phone));
}
