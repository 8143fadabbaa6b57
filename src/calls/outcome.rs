//! The call centre's outcomes. Some mean "never write to this person again"
//! (deceased, asked not to be contacted), some "this number is wrong", most
//! mean nothing for messaging. An outcome not listed here is reported, never
//! guessed.

use crate::domain::{fold, PhoneNumber};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The number is wrong or incomplete: stop SMS to it.
    WrongNumber,
    /// The citizen has died: stop every channel.
    Deceased,
    /// The citizen asked not to be contacted again: stop every channel.
    DoNotContact,
    /// Nothing to change (answered, no answer, voicemail…).
    Neutral,
}

const OUTCOMES: &[(&str, CallOutcome)] = &[
    ("numero equivocado", CallOutcome::WrongNumber),
    ("numero incompleto o incorrecto", CallOutcome::WrongNumber),
    ("numero incorrecto", CallOutcome::WrongNumber),
    ("numero incompleto", CallOutcome::WrongNumber),
    ("numero inexistente", CallOutcome::WrongNumber),
    ("ciudadano fallecido", CallOutcome::Deceased),
    ("ciudadana fallecida", CallOutcome::Deceased),
    ("persona fallecida", CallOutcome::Deceased),
    ("fallecido", CallOutcome::Deceased),
    ("fallecida", CallOutcome::Deceased),
    (
        "solicito no se le vuelva a llamar",
        CallOutcome::DoNotContact,
    ),
    ("solicito no ser contactado", CallOutcome::DoNotContact),
    ("solicito no ser contactada", CallOutcome::DoNotContact),
    ("no desea ser contactado", CallOutcome::DoNotContact),
    ("no desea ser contactada", CallOutcome::DoNotContact),
    ("contesto", CallOutcome::Neutral),
    ("llamada exitosa", CallOutcome::Neutral),
    ("informacion proporcionada", CallOutcome::Neutral),
    ("no contesto", CallOutcome::Neutral),
    ("no contesta", CallOutcome::Neutral),
    ("sin respuesta", CallOutcome::Neutral),
    ("buzon de voz", CallOutcome::Neutral),
    ("ocupado", CallOutcome::Neutral),
    ("colgo", CallOutcome::Neutral),
    ("llamar despues", CallOutcome::Neutral),
    // The same outcomes as English-speaking call-centre staff write them.
    ("wrong number", CallOutcome::WrongNumber),
    ("invalid number", CallOutcome::WrongNumber),
    ("deceased", CallOutcome::Deceased),
    ("asked not to be contacted", CallOutcome::DoNotContact),
    ("asked not to be contacted again", CallOutcome::DoNotContact),
    ("do not contact", CallOutcome::DoNotContact),
    ("do not call", CallOutcome::DoNotContact),
    ("answered", CallOutcome::Neutral),
    ("no answer", CallOutcome::Neutral),
    ("voicemail", CallOutcome::Neutral),
    ("busy", CallOutcome::Neutral),
    ("call back", CallOutcome::Neutral),
];

/// A call made by the call centre, as `aviso calls import` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAttempt {
    /// Unique per activity: the same row imported twice is recorded once.
    pub key: String,
    pub contact_id: Option<String>,
    pub phone: Option<PhoneNumber>,
    pub date: chrono::NaiveDate,
    /// As the call centre wrote it.
    pub outcome: String,
}

/// The outcome a call-centre label means, if it is one we know. Case, accents
/// and punctuation do not matter ("Número equivocado", "NUMERO EQUIVOCADO.").
pub fn classify_call(label: &str) -> Option<CallOutcome> {
    let folded: String = fold(label)
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    OUTCOMES
        .iter()
        .find(|(known, _)| *known == words)
        .map(|(_, outcome)| *outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programme_outcomes_are_known() {
        assert_eq!(
            classify_call("Número equivocado"),
            Some(CallOutcome::WrongNumber)
        );
        assert_eq!(
            classify_call("Número incompleto o incorrecto"),
            Some(CallOutcome::WrongNumber)
        );
        assert_eq!(
            classify_call("Ciudadano fallecido"),
            Some(CallOutcome::Deceased)
        );
        assert_eq!(
            classify_call("Solicitó no se le vuelva a llamar"),
            Some(CallOutcome::DoNotContact)
        );
        assert_eq!(classify_call(" BUZÓN DE VOZ. "), Some(CallOutcome::Neutral));
        assert_eq!(
            classify_call("Wrong number"),
            Some(CallOutcome::WrongNumber)
        );
        assert_eq!(
            classify_call("Asked not to be contacted"),
            Some(CallOutcome::DoNotContact)
        );
        assert_eq!(classify_call("No answer"), Some(CallOutcome::Neutral));
        assert_eq!(classify_call("Se mudó a Canadá"), None);
        assert_eq!(classify_call(""), None);
    }
}
