//! Contacts: the people and organisations aviso writes to, how they are read from
//! the registry's CSV exports, and how campaign staff select them.

mod import;
mod segment;

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
        /// Feeds `Display` output straight into the digest, without a String per field.
        struct Feed<'h>(&'h mut Sha256);
        impl std::fmt::Write for Feed<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        fn field(hasher: &mut Sha256, value: Option<&dyn std::fmt::Display>) {
            if let Some(value) = value {
                // Writing into a digest cannot fail.
                let _ = std::fmt::Write::write_fmt(&mut Feed(hasher), format_args!("{value}"));
            }
            hasher.update([0x1f]);
        }
        fn opt<T: std::fmt::Display>(v: &Option<T>) -> Option<&dyn std::fmt::Display> {
            v.as_ref().map(|v| v as &dyn std::fmt::Display)
        }
        let mut hasher = Sha256::new();
        field(&mut hasher, Some(&self.kind));
        field(&mut hasher, opt(&self.first_name));
        field(&mut hasher, opt(&self.last_name));
        field(&mut hasher, opt(&self.entity));
        field(&mut hasher, opt(&self.country));
        field(&mut hasher, opt(&self.email));
        field(&mut hasher, opt(&self.phone));
        field(&mut hasher, Some(&self.language));
        field(&mut hasher, opt(&self.credential));
        field(&mut hasher, opt(&self.population));
        field(&mut hasher, opt(&self.modality));
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
