//! What a template may know about the person it is written to.

use serde::Serialize;

use crate::contacts::Contact;

/// The contact fields a template can use (`{{contact.*}}`). Built from a stored
/// contact, from a frozen outbox row, or from `samples.toml`. A field the
/// contact lacks is left out, not null: in strict mode `{{contact.last_name}}`
/// is then an error, never a blank, while `{{#if contact.last_name}}` works.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
// Tests build recipients that differ in one field, by name.
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Recipient {
    pub id: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    pub full_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub language: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub population: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
}

impl Recipient {
    pub fn from_contact(c: &Contact) -> Recipient {
        fn s<T: ToString>(v: &Option<T>) -> Option<String> {
            v.as_ref().map(|x| x.to_string())
        }
        Recipient {
            id: c.id.clone(),
            kind: c.kind.to_string(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            full_name: c.full_name(),
            entity: s(&c.entity),
            country: s(&c.country),
            language: c.language.to_string(),
            credential: s(&c.credential),
            population: s(&c.population),
            modality: s(&c.modality),
        }
    }

    /// A sample contact from `samples.toml` (`[citizen]` or `[organization]`).
    pub fn from_sample(table: &toml::Table) -> Recipient {
        let get = |k: &str| table.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let first_name = get("first_name");
        let last_name = get("last_name");
        let full_name = get("full_name").unwrap_or_else(|| {
            [first_name.as_deref(), last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        });
        Recipient {
            id: get("id").unwrap_or_else(|| "SAMPLE".into()),
            kind: get("kind").unwrap_or_else(|| "citizen".into()),
            first_name,
            last_name,
            full_name,
            entity: get("entity"),
            country: get("country"),
            language: get("language").unwrap_or_else(|| "es".into()),
            credential: get("credential"),
            population: get("population"),
            modality: get("modality"),
        }
    }
}
