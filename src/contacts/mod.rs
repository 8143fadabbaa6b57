//! Contacts: the people and organisations aviso writes to, how they are read from
//! the registry's CSV exports, and how campaign staff select them.

mod calls;
mod import;
mod segment;

pub use calls::{classify_call, CallOutcome};
pub(crate) use import::CrlfAsLf;
pub use import::{import_file, Encoding, ImportError, ImportOptions, ImportSummary, Rejection};
pub use segment::{Segment, SegmentError};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{
    ContactKind, Country, Credential, EmailAddress, Entity, Language, Modality, PhoneNumber,
    Population,
};

/// A contact as aviso keeps it: every field already parsed and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub id: String,
    pub kind: ContactKind,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub entity: Option<Entity>,
    pub country: Option<Country>,
    pub email: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub language: Language,
    pub credential: Option<Credential>,
    pub population: Option<Population>,
    pub modality: Option<Modality>,
}

impl Contact {
    /// A digest of every stored field, so a re-import can tell "unchanged" from
    /// "updated" without comparing column by column.
    pub fn content_hash(&self) -> String {
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map(|v| v.to_string()).unwrap_or_default()
        }
        let fields = [
            self.kind.to_string(),
            opt(&self.first_name),
            opt(&self.last_name),
            opt(&self.entity),
            opt(&self.country),
            opt(&self.email),
            opt(&self.phone),
            self.language.to_string(),
            opt(&self.credential),
            opt(&self.population),
            opt(&self.modality),
        ];
        let mut hasher = Sha256::new();
        for field in &fields {
            hasher.update(field.as_bytes());
            hasher.update([0x1f]);
        }
        hex::encode(&hasher.finalize()[..16])
    }

    /// The name to greet: "Rosa Núñez Jiménez", or the organisation's name.
    pub fn full_name(&self) -> String {
        [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A stored contact and the lists it belongs to (`aviso contacts show`).
#[derive(Debug, Clone, Serialize)]
pub struct ContactRecord {
    #[serde(flatten)]
    pub contact: Contact,
    pub lists: Vec<String>,
}
