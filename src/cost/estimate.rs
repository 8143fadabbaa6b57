//! `aviso campaign estimate`: before a run starts, who it would reach, how many
//! SMS segments that takes and what it costs, by country and entity. The
//! audience is read the way a run freezes it (list, segment, address for the
//! channel, suppressions) and every SMS is rendered and measured the way the
//! worker renders and measures it, so the estimate's segments are the ones
//! later sent.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::prices::{Money, PriceTable};
use crate::campaigns::Campaign;
use crate::contacts::Contact;
use crate::domain::{ChannelKind, Country, SuppressionScope};
use crate::store::{Store, StoreError};
use crate::templates::{Recipient, Renderer};

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("campaign {id}: {reason}")]
    Invalid { id: i64, reason: String },
    #[error(
        "campaign {id}: the estimate, {estimate} {currency}, is over the budget of {budget} {currency}{unpriced}; \
         raise it with `budget` in [prices] of aviso.toml or narrow the audience with a new campaign"
    )]
    OverBudget {
        id: i64,
        estimate: Money,
        budget: Money,
        currency: String,
        unpriced: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One country or entity of an estimate (or of spent cost).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CostLine {
    /// The country code or entity; `none` when the contact has none.
    pub key: String,
    pub recipients: i64,
    /// SMS segments (0 for e-mail).
    pub segments: i64,
    /// The cost of the recipients that have a price.
    pub cost: Option<Money>,
    /// Recipients whose country has no price (and no default): not in `cost`.
    pub unpriced: i64,
}

/// Messages of one language and encoding, as a phone would count them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncodingLine {
    pub language: String,
    pub encoding: String,
    pub messages: i64,
    pub segments: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub campaign: i64,
    pub channel: ChannelKind,
    /// `None` when aviso.toml has no `[prices]`.
    pub currency: Option<String>,
    /// List members in the campaign's segment.
    pub audience: i64,
    /// Members without an address for the channel: counted, never messaged.
    pub no_address: i64,
    /// Members whose address is suppressed: frozen as `suppressed`, not sent.
    pub suppressed: i64,
    /// Messages the run would send.
    pub recipients: i64,
    pub segments: i64,
    /// The cost of the priced recipients; see `unpriced`.
    pub cost: Option<Money>,
    /// Recipients in countries without a price: not in `cost`.
    pub unpriced: i64,
    /// Countries without a price ("no price", never zero).
    pub no_price: Vec<String>,
    pub budget: Option<Money>,
    pub by_country: Vec<CostLine>,
    pub by_entity: Vec<CostLine>,
    pub by_encoding: Vec<EncodingLine>,
}

impl Estimate {
    /// Refuses a run whose estimate is over its budget.
    pub fn check_budget(&self) -> Result<(), CostError> {
        match (self.budget, self.cost) {
            (Some(budget), Some(cost)) if cost > budget => Err(CostError::OverBudget {
                id: self.campaign,
                estimate: cost,
                budget,
                currency: self.currency.clone().unwrap_or_default(),
                unpriced: if self.unpriced > 0 {
                    format!(
                        " (and {} recipients in {} have no price)",
                        self.unpriced,
                        self.no_price.join(", ")
                    )
                } else {
                    String::new()
                },
            }),
            _ => Ok(()),
        }
    }
}

/// Adds recipients to per-key lines.
#[derive(Default)]
pub(super) struct Lines(BTreeMap<String, CostLine>);

impl Lines {
    pub(super) fn add(&mut self, key: &str, recipients: i64, segments: i64, cost: Option<Money>) {
        let line = self.0.entry(key.to_string()).or_insert_with(|| CostLine {
            key: key.to_string(),
            ..CostLine::default()
        });
        line.recipients += recipients;
        line.segments += segments;
        match cost {
            Some(cost) => line.cost = Some(line.cost.unwrap_or_default().plus(cost)),
            None => line.unpriced += recipients,
        }
    }

    pub(super) fn into_vec(self) -> Vec<CostLine> {
        self.0.into_values().collect()
    }
}

/// The estimate of the campaign's next run, on today's contacts and suppressions.
pub async fn estimate(
    store: &dyn Store,
    renderer: &Renderer,
    campaign: &Campaign,
    prices: Option<&PriceTable>,
) -> Result<Estimate, CostError> {
    let invalid = |reason: String| CostError::Invalid {
        id: campaign.id,
        reason,
    };
    let (channel, segment, lang) = (campaign.channel, &campaign.segment, campaign.lang_mode);
    let vars = serde_json::Value::Object(campaign.vars.clone());
    // The same match as the run's freeze: lower-cased address, this channel or all.
    let suppressed: HashSet<String> = store
        .suppressions(None)
        .await?
        .into_iter()
        .filter(|s| s.scope == SuppressionScope::All || s.scope.code() == channel.code())
        .map(|s| s.address.to_lowercase())
        .collect();
    let counts = store
        .count_contacts(Some(campaign.list_id), segment)
        .await?;
    let with_address = match channel {
        ChannelKind::Sms => counts.by_channel.sms,
        ChannelKind::Email => counts.by_channel.email,
    };
    let mut estimate = Estimate {
        campaign: campaign.id,
        channel,
        currency: prices.map(|p| p.currency.to_string()),
        audience: counts.total,
        no_address: counts.total - with_address,
        suppressed: 0,
        recipients: 0,
        segments: 0,
        cost: prices.map(|_| Money::ZERO),
        unpriced: 0,
        no_price: Vec::new(),
        budget: campaign
            .budget_micros
            .map(Money::from_micros)
            .or(prices.and_then(|p| p.budget)),
        by_country: Vec::new(),
        by_entity: Vec::new(),
        by_encoding: Vec::new(),
    };
    let (mut countries, mut entities) = (Lines::default(), Lines::default());
    let mut encodings: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut no_price = std::collections::BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = store
            .audience_page(campaign.list_id, segment, channel, &after, 2000)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for contact in &page {
            let Some(address) = address_of(contact, channel) else {
                continue;
            };
            if suppressed.contains(&address.to_lowercase()) {
                estimate.suppressed += 1;
                continue;
            }
            let segments = match channel {
                ChannelKind::Sms => {
                    let sms = renderer
                        .render_sms(
                            &campaign.template,
                            lang,
                            &Recipient::from_contact(contact),
                            &vars,
                        )
                        .map_err(|e| invalid(format!("for contact {}: {e}", contact.id)))?;
                    let slot = encodings
                        .entry((sms.language, sms.info.encoding.as_str().to_string()))
                        .or_default();
                    slot.0 += 1;
                    slot.1 += sms.info.segments as i64;
                    sms.info.segments as i64
                }
                ChannelKind::Email => 0,
            };
            let billed = if channel == ChannelKind::Sms {
                segments
            } else {
                1
            };
            let cost = cost_of(prices, channel, contact.country, billed);
            if prices.is_some() && cost.is_none() {
                no_price.insert(country_key(contact.country));
            }
            estimate.recipients += 1;
            estimate.segments += segments;
            match cost {
                Some(cost) => {
                    estimate.cost = Some(estimate.cost.unwrap_or_default().plus(cost));
                }
                None => estimate.unpriced += 1,
            }
            countries.add(&country_key(contact.country), 1, segments, cost);
            let entity = contact
                .entity
                .map(|e| e.to_string())
                .unwrap_or_else(|| "none".into());
            entities.add(&entity, 1, segments, cost);
        }
    }
    estimate.no_price = no_price.into_iter().collect();
    estimate.by_country = countries.into_vec();
    estimate.by_entity = entities.into_vec();
    estimate.by_encoding = encodings
        .into_iter()
        .map(
            |((language, encoding), (messages, segments))| EncodingLine {
                language,
                encoding,
                messages,
                segments,
            },
        )
        .collect();
    Ok(estimate)
}

fn address_of(contact: &Contact, channel: ChannelKind) -> Option<String> {
    match channel {
        ChannelKind::Sms => contact.phone.as_ref().map(|p| p.to_string()),
        ChannelKind::Email => contact.email.as_ref().map(|e| e.to_string()),
    }
}

pub(super) fn country_key(country: Option<Country>) -> String {
    country
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| "none".into())
}

/// `units` billed units (SMS segments, e-mails) to `country`; `None` without a price.
pub(super) fn cost_of(
    prices: Option<&PriceTable>,
    channel: ChannelKind,
    country: Option<Country>,
    units: i64,
) -> Option<Money> {
    prices?.price(channel, country).map(|p| p.times(units))
}
