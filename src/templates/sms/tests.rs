use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

/// Basic table of 3GPP TS 23.038 §6.2.1 in code order (0x00..=0x7F), Greek
/// letters escaped so that look-alike Latin letters cannot slip in. Position
/// 0x1B is the escape to the extension table, not a character.
const BASIC_TABLE: &str = "@£$¥èéùìòÇ\nØø\rÅå\
        \u{394}_\u{3a6}\u{393}\u{39b}\u{3a9}\u{3a0}\u{3a8}\u{3a3}\u{398}\u{39e}\u{1b}ÆæßÉ\
        \u{20}!\"#¤%&'()*+,-./0123456789:;<=>?\
        ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§\
        ¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Extension table of 3GPP TS 23.038 §6.2.1.1 (each sent as ESC + code).
const EXTENSION_TABLE: &str = "\u{c}^{}\\[~]|\u{20ac}";

fn info(encoding: SmsEncoding, characters: usize, units: usize, segments: usize) -> SmsInfo {
    SmsInfo {
        encoding,
        characters,
        units,
        segments,
    }
}

fn segments(text: &str) -> usize {
    measure(text).segments
}

/// Units of `part` when sent in `encoding` (a part of a UCS-2 message is
/// UCS-2 even if its own characters are all GSM-7).
fn units_in(part: &str, encoding: SmsEncoding) -> usize {
    part.chars().map(|c| encoding.units(c)).sum()
}

#[test]
fn gsm7_tables_match_3gpp_23_038_for_every_char() {
    let mut expected: HashMap<char, u8> = HashMap::new();
    assert_eq!(BASIC_TABLE.chars().count(), 128);
    for (code, c) in BASIC_TABLE.chars().enumerate() {
        if code != 0x1b {
            expected.insert(c, 1);
        }
    }
    assert_eq!(EXTENSION_TABLE.chars().count(), 10);
    for c in EXTENSION_TABLE.chars() {
        expected.insert(c, 2);
    }
    for c in (0..=0x10ffff).filter_map(char::from_u32) {
        let septets = expected.get(&c).copied().unwrap_or(0);
        assert_eq!(gsm7_septets(c), septets, "{c:?} (U+{:04X})", c as u32);
        assert_eq!(is_gsm7(c), septets != 0, "{c:?}");
    }
}

#[test]
fn spanish_accents_outside_gsm7_are_the_acute_vowels_except_e() {
    for c in "áíóúÁÍÓÚ".chars() {
        assert!(!is_gsm7(c), "{c}");
    }
    for c in "éÉñÑüÜ¿¡".chars() {
        assert!(is_gsm7(c), "{c}");
    }
}

#[test]
fn empty_text_is_one_empty_message() {
    assert_eq!(measure(""), info(SmsEncoding::Gsm7, 0, 0, 1));
    assert_eq!(split_parts(""), vec![String::new()]);
}

#[test]
fn gsm7_part_boundaries() {
    for (len, parts) in [(160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)] {
        let text = "a".repeat(len);
        assert_eq!(
            measure(&text),
            info(SmsEncoding::Gsm7, len, len, parts),
            "{len}"
        );
        assert_eq!(split_parts(&text).len(), parts, "{len}");
    }
}

#[test]
fn ucs2_part_boundaries() {
    for (len, parts) in [(70, 1), (71, 2), (134, 2), (135, 3)] {
        let text = "á".repeat(len);
        assert_eq!(
            measure(&text),
            info(SmsEncoding::Ucs2, len, len, parts),
            "{len}"
        );
        assert_eq!(split_parts(&text).len(), parts, "{len}");
    }
}

#[test]
fn extension_characters_count_double() {
    assert_eq!(
        measure(&"€".repeat(80)),
        info(SmsEncoding::Gsm7, 80, 160, 1)
    );
    assert_eq!(
        measure(&"€".repeat(81)),
        info(SmsEncoding::Gsm7, 81, 162, 2)
    );
    assert_eq!(measure("{[]}"), info(SmsEncoding::Gsm7, 4, 8, 1));
}

#[test]
fn extension_character_never_straddles_parts() {
    // 154 septets still fit in a single message.
    let text = format!("{}€", "a".repeat(152));
    assert_eq!(measure(&text), info(SmsEncoding::Gsm7, 153, 154, 1));
    assert_eq!(split_parts(&text), vec![text.clone()]);

    // 161 septets: the € does not fit in the 1 septet left after 152.
    let text = format!("{}€{}", "a".repeat(152), "a".repeat(7));
    assert_eq!(measure(&text), info(SmsEncoding::Gsm7, 160, 161, 2));
    assert_eq!(
        split_parts(&text),
        vec!["a".repeat(152), format!("€{}", "a".repeat(7))]
    );

    // 306 septets would be 2 parts by division, but the € pushed into part
    // 2 leaves one septet for a third.
    let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
    assert_eq!(measure(&text), info(SmsEncoding::Gsm7, 305, 306, 3));
    assert_eq!(
        split_parts(&text),
        vec![
            "a".repeat(152),
            format!("€{}", "a".repeat(151)),
            "a".to_owned()
        ]
    );
}

#[test]
fn single_emoji_is_two_units() {
    assert_eq!(measure("😀"), info(SmsEncoding::Ucs2, 1, 2, 1));
}

#[test]
fn surrogate_pair_never_straddles_parts() {
    // 134 units would be 2 parts by division; the emoji moves to part 2.
    let text = format!("{}😀{}", "á".repeat(66), "á".repeat(66));
    assert_eq!(measure(&text), info(SmsEncoding::Ucs2, 133, 134, 3));
    assert_eq!(
        split_parts(&text),
        vec![
            "á".repeat(66),
            format!("😀{}", "á".repeat(65)),
            "á".to_owned()
        ]
    );

    // 67 is odd, so a part holds 33 emoji.
    assert_eq!(
        measure(&"😀".repeat(35)),
        info(SmsEncoding::Ucs2, 35, 70, 1)
    );
    let parts = split_parts(&"😀".repeat(36));
    assert_eq!(parts, vec!["😀".repeat(33), "😀".repeat(3)]);
}

/// Rows of GC Notify's `notifications_utils/sms_fragment_count_cases.csv`
/// (cds-snc/notification-utils) with plain content; the rows with
/// `((placeholders))` test template rendering, not counting. Long runs are
/// written as repeats of the run lengths in the CSV.
#[test]
fn gc_notify_fragment_count_cases() {
    let cases = [
        (
            "Your verification code is 123456. Do not share this code with anyone.".to_owned(),
            1,
        ),
        ("a".repeat(160), 1),
        ("a".repeat(161), 2),
        ("a".repeat(306), 2),
        ("a".repeat(307), 3),
        ("Nous avons bien reçu votre demande.".to_owned(), 1),
        (
            "Bonjour! Votre code: 123456. À conserver précieusement. Merci de ne pas le partager."
                .to_owned(),
            2,
        ),
        ("ë".repeat(70), 1),
        ("ë".repeat(71), 2),
        ("À".repeat(134), 2),
        ("À".repeat(135), 3),
        ("Template: {name} and [link]".to_owned(), 1),
        ("€".repeat(80), 1),
        ("€".repeat(81), 2),
        ("a".repeat(460), 4),
        ("À".repeat(335), 5),
        ("À".repeat(373), 6),
        // tests/test_template.py, test_sms_fragment_count_french_uses_unicode_encoding
        ("À".repeat(70), 1),
        ("À".repeat(71), 2),
    ];
    for (text, expected) in cases {
        assert_eq!(segments(&text), expected, "{text}");
    }
}

/// GC Notify's tests/test_template.py `test_is_unicode`.
#[test]
fn gc_notify_is_unicode_cases() {
    assert_eq!(measure("Hello world").encoding, SmsEncoding::Gsm7);
    for text in [
        "ŵ",
        "This is â Welsh message",
        "À",
        "ç",
        "Œ",
        "Message en français: À noël",
        "ᐁ",
        "ᐊ",
    ] {
        assert_eq!(measure(text).encoding, SmsEncoding::Ucs2, "{text}");
    }
}

/// GOV.UK Notify's fragment counts with extension characters
/// (alphagov/emergency-alerts-utils tests/test_template_types.py,
/// `test_sms_fragment_count_accounts_for_extended_gsm_characters` and
/// `..._unicode_and_welsh_characters`). Left out: `"â" * 133 + "}"`, which
/// they count as 3 parts because they count `}` double in UCS-2 too, where
/// it is one unit like any other (134 units, 2 parts).
#[test]
fn gov_uk_notify_extension_and_welsh_cases() {
    let a = |n| "a".repeat(n);
    let cases = [
        ("^".repeat(81), 2),
        (a(158) + "|", 1),
        (a(159) + "|", 2),
        (a(304) + "[", 2),
        (a(304) + "[]", 3),
        ("â".repeat(132) + "{", 2),
        ("à".repeat(71), 1),
        ("à".repeat(160), 1),
        ("à".repeat(161), 2),
        ("à".repeat(612), 4),
        ("à".repeat(613), 5),
        ("à".repeat(918), 6),
        ("à".repeat(919), 7),
        ("ÿ".repeat(70), 1),
        ("ÿ".repeat(71), 2),
        ("ÿ".repeat(402), 6),
        ("ÿ".repeat(403), 7),
        ("à".repeat(70) + "ÿ", 2),
    ];
    for (text, expected) in cases {
        assert_eq!(segments(&text), expected, "{text}");
    }
}

/// GC Notify's tests/test_sanitise_text.py cases where our mapping agrees
/// (they drop the no-break space and turn emoji into `?`; we keep both
/// readable).
#[test]
fn gc_notify_sanitise_cases() {
    for (from, to) in [
        ("a", "a"),
        ("\t", " "),
        ("–", "-"),
        ("—", "-"),
        ("…", "..."),
        ("‘", "'"),
        ("’", "'"),
        ("“", "\""),
        ("”", "\""),
        ("\n", "\n"),
        ("\r", "\r"),
        ("à", "à"),
        ("€", "€"),
        ("â", "a"),
        (
            "The quick brown fox jumps over the lazy dog",
            "The quick brown fox jumps over the lazy dog",
        ),
    ] {
        assert_eq!(transliterate(from), to, "{from:?}");
    }
}

#[test]
fn spanish_sentences() {
    let text = "Tu registro está completo. Vota el 5 de junio: votoextranjero.mx";
    assert_eq!(measure(text), info(SmsEncoding::Ucs2, 64, 64, 1));
    let prepared = prepare(text, true);
    assert_eq!(
        prepared.text,
        "Tu registro esta completo. Vota el 5 de junio: votoextranjero.mx"
    );
    assert_eq!(prepared.info, info(SmsEncoding::Gsm7, 64, 64, 1));

    let text = "¿Dónde votarás?";
    assert_eq!(measure(text), info(SmsEncoding::Ucs2, 15, 15, 1));
    assert_eq!(transliterate(text), "¿Donde votaras?");
    assert_eq!(
        measure("¿Donde votaras?"),
        info(SmsEncoding::Gsm7, 15, 15, 1)
    );

    // Three UCS-2 parts become one GSM-7 message.
    let text = "Hola, María: tu credencial para votar desde el extranjero está lista. \
                    Recógela en el consulado o revisa su estatus en votoextranjero.mx";
    assert_eq!(measure(text), info(SmsEncoding::Ucs2, 135, 135, 3));
    assert_eq!(
        prepare(text, true).info,
        info(SmsEncoding::Gsm7, 135, 135, 1)
    );

    let text = "¡Feliz año nuevo! ¿Ya tienes tu credencial? Pingüinos, niñas y señores: a votar.";
    assert_eq!(measure(text), info(SmsEncoding::Gsm7, 80, 80, 1));
    assert!(matches!(transliterate(text), Cow::Borrowed(t) if t == text));
}

#[test]
fn prepare_transliterates_only_when_asked() {
    let text = "Votación “abierta” – ¡ya!";
    assert_eq!(
        prepare(text, false),
        PreparedSms {
            text: text.to_owned(),
            info: info(SmsEncoding::Ucs2, 25, 25, 1),
        }
    );
    assert_eq!(
        prepare(text, true),
        PreparedSms {
            text: "Votacion \"abierta\" - ¡ya!".to_owned(),
            info: info(SmsEncoding::Gsm7, 25, 25, 1),
        }
    );
}

#[test]
fn transliteration_keeps_unmappable_characters() {
    let text = "Ya votaste 🗳️ 你好, Jesús";
    let out = transliterate(text);
    assert_eq!(out, "Ya votaste 🗳️ 你好, Jesus");
    assert_eq!(measure(&out).encoding, SmsEncoding::Ucs2);
    assert_eq!(transliterate("😀"), "😀");
    assert_eq!(prepare("😀", true).info, info(SmsEncoding::Ucs2, 1, 2, 1));
}

#[test]
fn transliteration_maps_spaces_quotes_and_ordinals() {
    assert_eq!(
        transliterate("1º\u{a0}lugar, 2ª vuelta… «Sí» `ok´ • fin\u{202f}!"),
        "1o lugar, 2a vuelta... \"Si\" 'ok' - fin !"
    );
    assert_eq!(
        transliterate("Ça, ça, œuvre, ÈÊËÏÎ"),
        "Ça, Ça, oeuvre, EEEII"
    );
}

#[test]
fn transliteration_table_maps_only_non_gsm7_chars_to_gsm7_text() {
    for c in (0..=0x10ffff).filter_map(char::from_u32) {
        if let Some(replacement) = gsm7_equivalent(c) {
            assert!(!is_gsm7(c), "{c:?} is GSM-7 and must be left alone");
            assert!(!replacement.is_empty(), "{c:?} would be dropped");
            assert!(replacement.chars().all(is_gsm7), "{c:?} -> {replacement:?}");
        }
    }
}

#[test]
fn transliterate_borrows_when_nothing_changes() {
    assert!(matches!(transliterate("Hola ñandú 😀"), Cow::Owned(_)));
    assert!(matches!(transliterate("Hola ñandu 😀"), Cow::Borrowed(_)));
}

#[test]
fn encoding_names() {
    assert_eq!(SmsEncoding::Gsm7.as_str(), "GSM-7");
    assert_eq!(SmsEncoding::Ucs2.as_str(), "UCS-2");
    assert_eq!(SmsEncoding::Gsm7.kannel_coding(), "0");
    assert_eq!(SmsEncoding::Ucs2.kannel_coding(), "2");
    assert_eq!(
        serde_json::to_value(measure("¿Dónde?")).unwrap(),
        serde_json::json!({"encoding": "UCS-2", "characters": 7, "units": 7, "segments": 1})
    );
    assert_eq!(
        serde_json::to_value(SmsEncoding::Gsm7).unwrap(),
        serde_json::json!(SmsEncoding::Gsm7.as_str())
    );
}

/// Texts near the part boundaries mixing every kind of character: basic,
/// extension, Spanish accents in and out of GSM-7, spaces and emoji.
fn sms_text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', ' ', '\n', '€', '{', '^', 'é', 'ñ', '¿', 'á', 'ó', '“', '…', '\u{a0}', '😀', '你',
    ]);
    prop_oneof![
        prop::collection::vec(chars, 0..500).prop_map(String::from_iter),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn parts_reassemble_fit_and_are_greedy(text in sms_text()) {
        let info = measure(&text);
        let parts = split_parts(&text);
        prop_assert_eq!(parts.concat(), text.as_str());
        prop_assert_eq!(parts.len(), info.segments);
        prop_assert_eq!(info.characters, text.chars().count());
        let limit = if parts.len() == 1 {
            info.encoding.single_part_limit()
        } else {
            info.encoding.multi_part_limit()
        };
        prop_assert_eq!(
            parts.iter().map(|p| units_in(p, info.encoding)).sum::<usize>(),
            info.units
        );
        for (i, part) in parts.iter().enumerate() {
            let units = units_in(part, info.encoding);
            prop_assert!(units <= limit, "part {} has {} units", i, units);
            if let Some(next) = parts.get(i + 1) {
                prop_assert!(!part.is_empty());
                let first = next.chars().next().unwrap();
                prop_assert!(units + info.encoding.units(first) > limit, "part {} not full", i);
            }
        }
    }

    #[test]
    fn prepare_measures_the_text_it_returns(text in sms_text(), translit in any::<bool>()) {
        let prepared = prepare(&text, translit);
        prop_assert_eq!(&prepared.info, &measure(&prepared.text));
        if !translit {
            prop_assert_eq!(prepared.text, text);
        }
    }

    #[test]
    fn transliteration_drops_no_unmappable_character(text in sms_text()) {
        let unmappable: String = text
            .chars()
            .filter(|&c| !is_gsm7(c) && gsm7_equivalent(c).is_none())
            .collect();
        let out = transliterate(&text);
        let kept: String = out.chars().filter(|&c| !is_gsm7(c)).collect();
        prop_assert_eq!(kept, unmappable);
    }

    #[test]
    fn transliteration_leaves_gsm7_text_alone(
        text in prop::collection::vec(
            prop::sample::select(BASIC_TABLE.chars().chain(EXTENSION_TABLE.chars())
                .filter(|&c| c != '\u{1b}').collect::<Vec<_>>()),
            0..300,
        ).prop_map(String::from_iter)
    ) {
        prop_assert!(matches!(transliterate(&text), Cow::Borrowed(t) if t == text));
    }
}
