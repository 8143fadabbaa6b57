//! The programme's indicators: (done / programmed) × 100 per activity, month,
//! entity, channel, country or language, counted from the message log (and
//! the records of work aviso does not send), so they reconcile to the unit.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;

use crate::campaigns::{Activity, ActivitySplit, MessageStatus};
use crate::cost::{Money, PriceTable};
use crate::domain::{ChannelKind, Country, Invalid};
use crate::store::{ActivityRecord, Store, StoreResult};

/// A dimension rows can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    Activity,
    Month,
    Entity,
    Channel,
    Country,
    Language,
}

impl GroupKey {
    pub const ALL: [GroupKey; 6] = [
        GroupKey::Activity,
        GroupKey::Month,
        GroupKey::Entity,
        GroupKey::Channel,
        GroupKey::Country,
        GroupKey::Language,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupKey::Activity => "activity",
            GroupKey::Month => "month",
            GroupKey::Entity => "entity",
            GroupKey::Channel => "channel",
            GroupKey::Country => "country",
            GroupKey::Language => "language",
        }
    }

    /// `activity,month` → the keys, in that order.
    pub fn parse_list(s: &str) -> Result<Vec<GroupKey>, Invalid> {
        let mut keys = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let key = GroupKey::ALL
                .into_iter()
                .find(|k| k.name() == part)
                .ok_or_else(|| {
                    Invalid::new(format!(
                        "--by {part:?}: group by activity, month, entity, channel, country or language"
                    ))
                })?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            keys.push(GroupKey::Activity);
        }
        Ok(keys)
    }
}

/// The measures of one group. `sent` counts what a gateway accepted (delivered
/// included) and, for work aviso does not send, what was recorded as done.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measures {
    pub programmed: Option<i64>,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub expired: i64,
    /// Held by the frequency cap: not sent, so not in `sent` nor the indicator.
    pub capped: i64,
    /// SMS segments gateways accepted (what SMS prices bill).
    pub segments: i64,
    /// What the accepted messages cost at the prices of `[prices]`: SMS
    /// segments, or e-mails, × the price of their country. `None` without prices.
    pub spent: Option<Money>,
    /// Accepted messages to countries without a price: not in `spent`.
    pub no_price: i64,
    /// The part of `sent` recorded as done (calls, events): it has no delivery.
    #[serde(skip)]
    pub done: i64,
}

impl Measures {
    /// sent / programmed × 100, unrounded (rounded only when printed).
    pub fn indicator_pct(&self) -> Option<f64> {
        super::percentage(self.sent, self.programmed)
    }

    /// delivered / sent × 100, over messages only (recorded work has no delivery).
    pub fn delivery_rate_pct(&self) -> Option<f64> {
        super::percentage(self.delivered, Some(self.sent - self.done))
    }

    fn add(&mut self, other: &Measures) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.suppressed += other.suppressed;
        self.expired += other.expired;
        self.capped += other.capped;
        self.segments += other.segments;
        self.spent = match (self.spent, other.spent) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or_default().plus(b.unwrap_or_default())),
        };
        self.no_price += other.no_price;
        self.done += other.done;
    }
}

/// One row: the values of its group keys (`None` where a message has no value
/// for a key, e.g. an organisation without entity) and its measures.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorRow {
    pub key: Vec<Option<String>>,
    /// The activity's name, when rows are grouped by activity.
    pub activity_name: Option<String>,
    pub measures: Measures,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub keys: Vec<GroupKey>,
    pub rows: Vec<IndicatorRow>,
    pub total: Measures,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// The currency of `spent`, when `[prices]` is set.
    pub currency: Option<String>,
}

impl Report {
    /// The value of `key` in `row`, if rows are grouped by it.
    pub fn value<'a>(&self, row: &'a IndicatorRow, key: GroupKey) -> Option<&'a str> {
        let i = self.keys.iter().position(|k| *k == key)?;
        row.key.get(i).and_then(|v| v.as_deref())
    }
}

/// Builds the report for `keys`, counting events between `from` and `to`
/// (inclusive days in `zone`), with the spent cost at `prices`.
pub async fn indicators(
    store: &dyn Store,
    keys: &[GroupKey],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    zone: Tz,
    prices: Option<&PriceTable>,
) -> StoreResult<Report> {
    let start = from.and_then(|d| {
        zone.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .earliest()
    });
    let end = to.and_then(|d| {
        zone.from_local_datetime(&d.succ_opt()?.and_hms_opt(0, 0, 0)?)
            .earliest()
    });
    let facts = store
        .message_facts(
            start.map(|t| t.timestamp_millis()),
            end.map(|t| t.timestamp_millis()),
        )
        .await?;
    let activities = store.activities().await?;
    let by_id: HashMap<i64, &Activity> = activities.iter().map(|a| (a.id, a)).collect();
    let mut targets: HashMap<i64, BTreeMap<String, i64>> = HashMap::new();
    for target in store.activity_targets().await? {
        targets
            .entry(target.activity_id)
            .or_default()
            .insert(target.entity, target.programmed);
    }

    let mut groups: BTreeMap<Vec<Option<String>>, (i64, Measures)> = BTreeMap::new();
    for f in &facts {
        let Some(activity) = by_id.get(&f.activity_id) else {
            continue;
        };
        let month = DateTime::from_timestamp(f.quarter * 900, 0)
            .map(|t| t.with_timezone(&zone))
            .map(|t| format!("{:04}-{:02}", t.year(), t.month()));
        let values = Values {
            activity: Some(activity.code.clone()),
            month,
            entity: f.entity.clone(),
            channel: Some(f.channel.to_string()),
            country: f.country.clone(),
            language: Some(f.language.clone()),
        };
        let m = &mut groups
            .entry(values.key(keys))
            .or_insert((activity.id, Measures::default()))
            .1;
        match f.status {
            MessageStatus::Sent => m.sent += f.count,
            MessageStatus::Delivered => {
                m.sent += f.count;
                m.delivered += f.count;
            }
            MessageStatus::Failed => m.failed += f.count,
            MessageStatus::Suppressed => m.suppressed += f.count,
            MessageStatus::Expired => m.expired += f.count,
            MessageStatus::Capped => m.capped += f.count,
            MessageStatus::Queued
            | MessageStatus::Sending
            | MessageStatus::Retrying
            | MessageStatus::Cancelled => {}
        }
        m.segments += f.segments;
        if let Some(prices) = prices {
            let country = f.country.as_deref().and_then(|c| Country::parse(c).ok());
            let units = match f.channel {
                ChannelKind::Sms => f.segments,
                ChannelKind::Email => f.accepted,
            };
            match prices.price(f.channel, country) {
                Some(price) => {
                    m.spent = Some(m.spent.unwrap_or_default().plus(price.times(units)));
                }
                None => m.no_price += f.accepted,
            }
        }
    }
    for ActivityRecord {
        activity_id,
        done,
        date,
    } in store.activity_records().await?
    {
        let Some(activity) = by_id.get(&activity_id) else {
            continue;
        };
        let Ok(day) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
            continue;
        };
        if from.is_some_and(|f| day < f) || to.is_some_and(|t| day > t) {
            continue;
        }
        let values = Values {
            activity: Some(activity.code.clone()),
            month: Some(format!("{:04}-{:02}", day.year(), day.month())),
            entity: None,
            channel: activity.channel.map(|c| c.to_string()),
            country: None,
            language: None,
        };
        let m = &mut groups
            .entry(values.key(keys))
            .or_insert((activity.id, Measures::default()))
            .1;
        m.sent += done;
        m.done += done;
    }
    // Groups the programme plans for, even before anything was sent.
    for a in &activities {
        for values in planned_groups(a, targets.get(&a.id), keys, from, to) {
            groups
                .entry(values.key(keys))
                .or_insert((a.id, Measures::default()));
        }
    }

    let mut rows: Vec<IndicatorRow> = groups
        .into_iter()
        .map(|(key, (activity_id, mut measures))| {
            let row_values = Values::from_key(keys, &key);
            measures.programmed = programmed(&activities, &targets, keys, &row_values, from, to);
            IndicatorRow {
                activity_name: keys
                    .contains(&GroupKey::Activity)
                    .then(|| by_id.get(&activity_id).map(|a| a.name.clone()))
                    .flatten(),
                key,
                measures,
            }
        })
        .collect();
    // Activities in the order the programme lists them, then the other keys.
    let order: HashMap<&str, usize> = activities
        .iter()
        .enumerate()
        .map(|(i, a)| (a.code.as_str(), i))
        .collect();
    if let Some(i) = keys.iter().position(|k| *k == GroupKey::Activity) {
        rows.sort_by(|a, b| {
            let rank = |r: &IndicatorRow| r.key[i].as_deref().and_then(|c| order.get(c)).copied();
            rank(a).cmp(&rank(b)).then_with(|| a.key.cmp(&b.key))
        });
    }
    let mut total = Measures::default();
    for r in &rows {
        total.add(&r.measures);
    }
    // A total of programmed figures only means something in one unit: messages
    // of one channel, or one counted activity (calls and workshops do not add up).
    let units: std::collections::HashSet<String> = rows
        .iter()
        .filter_map(|r| {
            let code = Values::from_key(keys, &r.key).activity?;
            let a = activities.iter().find(|a| a.code == code)?;
            Some(
                a.channel
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| format!("counted:{}", a.code)),
            )
        })
        .collect();
    total.programmed = if units.len() > 1 {
        None
    } else {
        rows.iter()
            .map(|r| r.measures.programmed)
            .sum::<Option<i64>>()
    };
    Ok(Report {
        keys: keys.to_vec(),
        rows,
        total,
        from,
        to,
        currency: prices.map(|p| p.currency.to_string()),
    })
}

/// The values of one message (or record) for every key.
#[derive(Debug, Clone, Default)]
struct Values {
    activity: Option<String>,
    month: Option<String>,
    entity: Option<String>,
    channel: Option<String>,
    country: Option<String>,
    language: Option<String>,
}

impl Values {
    fn get(&self, key: GroupKey) -> &Option<String> {
        match key {
            GroupKey::Activity => &self.activity,
            GroupKey::Month => &self.month,
            GroupKey::Entity => &self.entity,
            GroupKey::Channel => &self.channel,
            GroupKey::Country => &self.country,
            GroupKey::Language => &self.language,
        }
    }

    fn key(&self, keys: &[GroupKey]) -> Vec<Option<String>> {
        keys.iter().map(|k| self.get(*k).clone()).collect()
    }

    fn from_key(keys: &[GroupKey], key: &[Option<String>]) -> Values {
        let mut v = Values::default();
        for (k, value) in keys.iter().zip(key) {
            let slot = match k {
                GroupKey::Activity => &mut v.activity,
                GroupKey::Month => &mut v.month,
                GroupKey::Entity => &mut v.entity,
                GroupKey::Channel => &mut v.channel,
                GroupKey::Country => &mut v.country,
                GroupKey::Language => &mut v.language,
            };
            *slot = value.clone();
        }
        v
    }
}

/// The months (YYYY-MM) of an activity's period, within `from`..`to`.
fn months_of(a: &Activity) -> Vec<String> {
    let parse = |d: &Option<String>| {
        d.as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let (Some(first), Some(last)) = (parse(&a.period_from), parse(&a.period_to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut y, mut m) = (first.year(), first.month());
    while (y, m) <= (last.year(), last.month()) && out.len() < 1200 {
        out.push(format!("{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

fn month_in_range(month: &str, from: Option<NaiveDate>, to: Option<NaiveDate>) -> bool {
    let key = |d: NaiveDate| format!("{:04}-{:02}", d.year(), d.month());
    from.is_none_or(|f| month >= key(f).as_str()) && to.is_none_or(|t| month <= key(t).as_str())
}

/// The groups an activity's programmed total is spread over for these keys.
fn planned_groups(
    a: &Activity,
    targets: Option<&BTreeMap<String, i64>>,
    keys: &[GroupKey],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<Values> {
    if keys.contains(&GroupKey::Country) || keys.contains(&GroupKey::Language) {
        return Vec::new();
    }
    let base = Values {
        activity: Some(a.code.clone()),
        channel: a.channel.map(|c| c.to_string()),
        ..Values::default()
    };
    let mut out = vec![base];
    if keys.contains(&GroupKey::Month) {
        if a.split != ActivitySplit::Monthly {
            return Vec::new();
        }
        out = months_of(a)
            .into_iter()
            .filter(|m| month_in_range(m, from, to))
            .flat_map(|month| {
                out.iter().map(move |v| Values {
                    month: Some(month.clone()),
                    ..v.clone()
                })
            })
            .collect();
    }
    if keys.contains(&GroupKey::Entity) {
        let Some(targets) = targets else {
            return Vec::new();
        };
        out = targets
            .keys()
            .flat_map(|entity| {
                out.iter().map(move |v| Values {
                    entity: Some(entity.clone()),
                    ..v.clone()
                })
            })
            .collect();
    }
    out
}

/// An activity's share for one month of its period: even shares, the first
/// months carrying the remainder so the shares add up to the total.
fn month_share(a: &Activity, month: &str) -> i64 {
    let months = months_of(a);
    match months.iter().position(|m| m == month) {
        Some(i) => {
            let n = months.len() as i64;
            a.programmed / n + i64::from((i as i64) < a.programmed % n)
        }
        None => 0,
    }
}

/// The programmed total of a row, or `None` when the programme does not say how
/// it splits along these keys (rather than inventing a number).
fn programmed(
    activities: &[Activity],
    targets: &HashMap<i64, BTreeMap<String, i64>>,
    keys: &[GroupKey],
    row: &Values,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Option<i64> {
    if keys.contains(&GroupKey::Country) || keys.contains(&GroupKey::Language) {
        return None;
    }
    if keys.contains(&GroupKey::Month) && keys.contains(&GroupKey::Entity) {
        return None;
    }
    let mut total = 0;
    for a in activities {
        if keys.contains(&GroupKey::Activity) && row.activity.as_deref() != Some(a.code.as_str()) {
            continue;
        }
        if keys.contains(&GroupKey::Channel)
            && row.channel.as_deref() != a.channel.map(|c| c.code())
        {
            continue;
        }
        let part = if keys.contains(&GroupKey::Month) {
            if a.split != ActivitySplit::Monthly {
                return None;
            }
            month_share(a, row.month.as_deref()?)
        } else if keys.contains(&GroupKey::Entity) {
            let targets = targets.get(&a.id)?;
            row.entity
                .as_ref()
                .and_then(|e| targets.get(e))
                .copied()
                .unwrap_or(0)
        } else if a.split == ActivitySplit::Monthly && (from.is_some() || to.is_some()) {
            // A report for part of the year counts the months it covers.
            months_of(a)
                .iter()
                .filter(|m| month_in_range(m, from, to))
                .map(|m| month_share(a, m))
                .sum()
        } else {
            a.programmed
        };
        if !keys.contains(&GroupKey::Month)
            || month_in_range(row.month.as_deref().unwrap_or(""), from, to)
        {
            total += part;
        }
    }
    Some(total)
}
