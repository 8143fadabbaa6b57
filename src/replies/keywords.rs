//! What a citizen's SMS asks for: to stop messages (BAJA) or to get them
//! again (ALTA). People write "Baja por favor", "BÁJA!", "por favor stop":
//! case, accents and punctuation are ignored and other words are allowed, but
//! a keyword must be a whole word ("altamente" is not ALTA, "stopped" is not
//! STOP). A text with keywords of both kinds, or none, is `unknown`: nothing
//! changes, since guessing wrong either way messages someone against their wish.

use crate::domain::{fold, vocabulary};

vocabulary!(
    /// What an inbound SMS asks for.
    ReplyKeyword { OptOut => "opt_out", OptIn => "opt_in", Unknown => "unknown" }
);

/// The words that ask for something, after folding (lower case, no accents).
const KEYWORDS: &[(&str, ReplyKeyword)] = &[
    ("baja", ReplyKeyword::OptOut),
    ("alto", ReplyKeyword::OptOut),
    ("stop", ReplyKeyword::OptOut),
    ("cancelar", ReplyKeyword::OptOut),
    ("alta", ReplyKeyword::OptIn),
    ("start", ReplyKeyword::OptIn),
];

/// Reads what an SMS asks for.
pub fn classify(text: &str) -> ReplyKeyword {
    // Handsets may send an accent as a combining mark after its letter
    // ("BA\u{301}JA"): drop the mark so the word stays whole.
    let plain: String = text
        .chars()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .collect();
    let folded = fold(&plain);
    let (mut out, mut back_in) = (false, false);
    for word in folded.split(|c: char| !c.is_alphanumeric()) {
        match KEYWORDS.iter().find(|(k, _)| *k == word).map(|(_, kw)| kw) {
            Some(ReplyKeyword::OptOut) => out = true,
            Some(ReplyKeyword::OptIn) => back_in = true,
            _ => {}
        }
    }
    match (out, back_in) {
        (true, false) => ReplyKeyword::OptOut,
        (false, true) => ReplyKeyword::OptIn,
        _ => ReplyKeyword::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrasings_citizens_send() {
        use ReplyKeyword::{OptIn, OptOut, Unknown};
        let cases = [
            ("baja", OptOut),
            ("BAJA", OptOut),
            ("Baja", OptOut),
            ("BÁJA", OptOut),
            ("bája", OptOut),
            ("BA\u{301}JA", OptOut),
            ("Baja por favor", OptOut),
            ("baja, por favor.", OptOut),
            ("¡BAJA!", OptOut),
            ("  baja  ", OptOut),
            ("Quiero darme de baja", OptOut),
            ("stop", OptOut),
            ("STOP", OptOut),
            ("por favor stop", OptOut),
            ("Stop.", OptOut),
            ("alto", OptOut),
            ("ALTO!!", OptOut),
            ("cancelar", OptOut),
            ("CANCELAR suscripción", OptOut),
            ("baja\nbaja", OptOut),
            ("alta", OptIn),
            ("ALTA", OptIn),
            ("Álta", OptIn),
            ("alta por favor", OptIn),
            ("Quiero darme de alta de nuevo", OptIn),
            ("start", OptIn),
            ("START", OptIn),
            ("¿start?", OptIn),
            ("alta. gracias", OptIn),
            // Keywords inside longer words are not keywords.
            ("altamente recomendable", Unknown),
            ("stopped", Unknown),
            ("bajar", Unknown),
            ("cancelaron", Unknown),
            ("started", Unknown),
            ("altos", Unknown),
            ("b a j a", Unknown),
            // Both kinds, or neither: nothing changes.
            ("alta baja", Unknown),
            ("stop start", Unknown),
            ("No quiero alta, quiero baja", Unknown),
            ("Hola, ¿cuándo es la elección?", Unknown),
            ("", Unknown),
            ("!!!", Unknown),
            ("gracias", Unknown),
        ];
        assert!(cases.len() >= 30);
        for (text, expected) in cases {
            assert_eq!(classify(text), expected, "{text:?}");
        }
    }
}
