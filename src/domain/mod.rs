//! Valid-by-construction types: once a value of these types exists, it is valid.
//! Parsing lives here so the rest of the program never re-checks an address.

mod address;
mod cap;
mod country;
mod email;
mod entity;
mod language;
mod mask;
mod phone;
mod vocab;

pub(crate) use vocab::vocabulary;

pub use address::Address;
pub use cap::{CapPolicy, FrequencyCap, WhenCapped};
pub use country::Country;
pub use email::EmailAddress;
pub use entity::Entity;
pub use language::Language;
pub use mask::{mask_address, mask_email, mask_phone, redact_url};
pub use phone::PhoneNumber;
pub use vocab::{
    ChannelKind, ContactKind, Credential, Modality, Population, SuppressionReason, SuppressionScope,
};

/// Why a value was refused, in words a campaign operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Invalid(reason.into())
    }
}

/// Lower-case, trim and strip Spanish accents, for matching names typed by people
/// ("Oaxaca", "OAXACA", "Electrónica").
pub fn fold(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            'á' | 'Á' | 'à' | 'À' | 'ä' | 'Ä' => 'a',
            'é' | 'É' | 'è' | 'È' | 'ë' | 'Ë' => 'e',
            'í' | 'Í' | 'ì' | 'Ì' | 'ï' | 'Ï' => 'i',
            'ó' | 'Ó' | 'ò' | 'Ò' | 'ö' | 'Ö' => 'o',
            'ú' | 'Ú' | 'ù' | 'Ù' | 'ü' | 'Ü' => 'u',
            'ñ' | 'Ñ' => 'n',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}
