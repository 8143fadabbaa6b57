//! Contacts as rows: the columns, and reading them back re-checked.

use std::collections::BTreeMap;

use crate::contacts::Contact;
use crate::domain::{
    ContactKind, Country, Credential, EmailAddress, Entity, Invalid, Language, Modality,
    PhoneNumber, Population,
};
use crate::store::{ContactCounts, StoreError};

/// The contact columns, in the order [`contact_from_columns`] expects them.
pub(super) const CONTACT_COLUMNS: &str = "id, kind, first_name, last_name, entity, country, \
     email, phone, language, credential, population, modality";

fn stored<T>(id: &str, field: &str, value: Result<T, Invalid>) -> Result<T, StoreError> {
    value.map_err(|e| StoreError::Corrupt(format!("contact {id}, {field}: {e}")))
}

fn optional<T>(
    id: &str,
    field: &str,
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, Invalid>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| stored(id, field, parse(&v))).transpose()
}

/// Reads a row of `CONTACT_COLUMNS` into a contact.
pub(super) fn contact_from_row<R>(row: &R) -> Result<Contact, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut columns: [Option<String>; 12] = Default::default();
    for (i, column) in columns.iter_mut().enumerate() {
        *column = row.try_get(i)?;
    }
    contact_from_columns(columns)
}

/// Rebuilds a contact from its stored columns, re-checking every value so that
/// a hand-edited database cannot smuggle an invalid address into a send.
fn contact_from_columns(c: [Option<String>; 12]) -> Result<Contact, StoreError> {
    let [id, kind, first_name, last_name, entity, country, email, phone, language, credential, population, modality] =
        c;
    let id = id.unwrap_or_default();
    let kind = stored(
        &id,
        "kind",
        ContactKind::parse(kind.as_deref().unwrap_or("")),
    )?;
    Ok(Contact {
        kind,
        first_name,
        last_name,
        entity: optional(&id, "entity", entity, Entity::parse)?,
        country: optional(&id, "country", country, Country::parse)?,
        email: optional(&id, "email", email, EmailAddress::parse)?,
        phone: optional(&id, "phone", phone, |p| PhoneNumber::parse(p, None))?,
        language: stored(
            &id,
            "language",
            Language::parse(language.as_deref().unwrap_or("es")),
        )?,
        credential: optional(&id, "credential", credential, Credential::parse)?,
        population: optional(&id, "population", population, Population::parse)?,
        modality: optional(&id, "modality", modality, Modality::parse)?,
        id,
    })
}

/// Folds `(entity, language, kind, count, with phone, with e-mail)` groups into counts.
pub(super) fn fold_counts(
    groups: impl IntoIterator<Item = (Option<String>, String, String, i64, i64, i64)>,
) -> ContactCounts {
    let mut counts = ContactCounts::default();
    let add = |map: &mut BTreeMap<String, i64>, key: String, n: i64| {
        *map.entry(key).or_default() += n;
    };
    for (entity, language, kind, n, sms, email) in groups {
        counts.total += n;
        counts.by_channel.sms += sms;
        counts.by_channel.email += email;
        add(
            &mut counts.by_entity,
            entity.unwrap_or_else(|| "none".into()),
            n,
        );
        add(&mut counts.by_language, language, n);
        add(&mut counts.by_kind, kind, n);
    }
    counts
}

fn opt_string<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(|x| x.to_string())
}

/// The values of a contact row, in `CONTACT_COLUMNS` order plus the hash.
pub(super) fn contact_values(c: &Contact) -> [Option<String>; 13] {
    [
        Some(c.id.clone()),
        Some(c.kind.to_string()),
        c.first_name.clone(),
        c.last_name.clone(),
        opt_string(&c.entity),
        opt_string(&c.country),
        opt_string(&c.email),
        opt_string(&c.phone),
        Some(c.language.to_string()),
        opt_string(&c.credential),
        opt_string(&c.population),
        opt_string(&c.modality),
        Some(c.content_hash()),
    ]
}
