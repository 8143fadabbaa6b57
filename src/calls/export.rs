//! `aviso calls export`: who the call centre should call after a campaign.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use crate::campaigns::{Campaign, MessageStatus};
use crate::contacts::Contact;
use crate::domain::{ChannelKind, ContactKind, PhoneNumber, SuppressionReason};
use crate::report::inert_cell;
use crate::store::{Store, StoreError};

/// A citizen to call, and why the campaign did not reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub contact: Contact,
    pub phone: PhoneNumber,
    /// `failed`, `bounced`, `invalid address` or `no e-mail address` / `no phone`.
    pub reason: String,
    /// What the provider said, when it said something.
    pub detail: Option<String>,
}

/// The work list, by entity then contact id, and who could not be on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkList {
    pub items: Vec<WorkItem>,
    /// Unreached citizens with no phone at all, by entity (`none` without one):
    /// the call centre cannot call them either.
    pub without_phone: BTreeMap<String, i64>,
}

impl WorkList {
    pub fn by_entity(&self) -> BTreeMap<String, i64> {
        let mut counts = BTreeMap::new();
        for item in &self.items {
            *counts.entry(entity_of(&item.contact)).or_default() += 1;
        }
        counts
    }
}

fn entity_of(contact: &Contact) -> String {
    contact
        .entity
        .map(|e| e.to_string())
        .unwrap_or_else(|| "none".into())
}

/// The citizens of `campaign` whose message failed (bounces and failed
/// delivery reports included), was suppressed because the address was invalid
/// or had bounced, or who had no address for its channel. Each once, with the
/// first reason found; organisations are not the call centre's.
pub async fn work_list(store: &dyn Store, campaign: &Campaign) -> Result<WorkList, StoreError> {
    let (channel, segment) = (campaign.channel, &campaign.segment);
    let mut found: Vec<(Contact, String, Option<String>)> = Vec::new();
    for m in store.unreached_messages(campaign.id).await? {
        let bounced = m.reason.as_deref() == Some(SuppressionReason::HardBounce.code());
        let reason = match m.status {
            MessageStatus::Suppressed if bounced => "bounced",
            MessageStatus::Suppressed => "invalid address",
            _ => "failed",
        };
        let detail = m.reason.filter(|_| m.status == MessageStatus::Failed);
        found.push((m.contact, reason.to_string(), detail));
    }
    let missing = match channel {
        ChannelKind::Sms => "no phone",
        ChannelKind::Email => "no e-mail address",
    };
    let mut after = String::new();
    loop {
        let page = store
            .without_address_page(campaign.list_id, segment, channel, &after, 2000)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        found.extend(page.into_iter().map(|c| (c, missing.to_string(), None)));
    }

    let mut list = WorkList::default();
    let mut seen = HashSet::new();
    for (contact, reason, detail) in found {
        if contact.kind != ContactKind::Citizen || !seen.insert(contact.id.clone()) {
            continue;
        }
        match contact.phone.clone() {
            Some(phone) => list.items.push(WorkItem {
                contact,
                phone,
                reason,
                detail,
            }),
            None => *list.without_phone.entry(entity_of(&contact)).or_default() += 1,
        }
    }
    list.items.sort_by(|a, b| {
        (entity_of(&a.contact), &a.contact.id).cmp(&(entity_of(&b.contact), &b.contact.id))
    });
    Ok(list)
}

/// The work list's columns. `fecha` and `resultado` are left empty for the
/// call centre to fill in: the file comes back through `aviso calls import`.
pub const WORK_LIST_COLUMNS: [&str; 11] = [
    "id_contacto",
    "entidad",
    "nombre",
    "apellidos",
    "telefono",
    "telefono_nacional",
    "idioma",
    "motivo",
    "detalle",
    "fecha",
    "resultado",
];

/// CSV, UTF-8 with a byte-order mark for spreadsheets; every cell a
/// spreadsheet would run as a formula (an E.164 `+` included) made inert.
pub fn write_work_list<W: Write>(list: &WorkList, mut out: W) -> io::Result<W> {
    out.write_all(b"\xEF\xBB\xBF")?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(WORK_LIST_COLUMNS)?;
    for item in &list.items {
        let c = &item.contact;
        let cells = [
            c.id.clone(),
            entity_of(c),
            c.first_name.clone().unwrap_or_default(),
            c.last_name.clone().unwrap_or_default(),
            item.phone.to_string(),
            item.phone.national(),
            c.language.to_string(),
            item.reason.clone(),
            item.detail.clone().unwrap_or_default(),
            String::new(),
            String::new(),
        ];
        w.write_record(cells.iter().map(|cell| inert_cell(cell)))?;
    }
    let mut out = w.into_inner().map_err(|e| e.into_error())?;
    out.flush()?;
    Ok(out)
}
