//! The price table of `[prices]` in aviso.toml: what one SMS segment or one
//! e-mail costs, per channel and destination country, in a named currency.
//! Amounts are whole micro-units (millionths), so a million summed prices
//! never drift as floating-point sums would.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::domain::{ChannelKind, Country};

/// An amount of money in millionths of the currency unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

const MICROS: i64 = 1_000_000;

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_micros(micros: i64) -> Money {
        Money(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// `price × units`, saturating rather than wrapping on absurd inputs.
    pub fn times(self, units: i64) -> Money {
        Money(self.0.saturating_mul(units))
    }

    /// For spreadsheets, which store numbers as doubles; sums stay in micro-units.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / MICROS as f64
    }

    pub fn plus(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// A decimal written by a person: `0.35`, `1500`, `0.0079`; at most six
    /// decimals, never negative.
    pub fn parse(text: &str) -> Result<Money, String> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) {
            return Err(format!(
                "{text:?} is not an amount: write it like 0.35 or 1500"
            ));
        }
        if fraction.len() > 6 {
            return Err(format!(
                "{text:?} has more than six decimals: aviso counts millionths"
            ));
        }
        let whole: i64 = whole
            .parse()
            .ok()
            .filter(|w| *w <= i64::MAX / MICROS)
            .ok_or_else(|| format!("{text:?} is too large"))?;
        let fraction: i64 = format!("{fraction:0<6}").parse().unwrap_or(0);
        Ok(Money(whole * MICROS + fraction))
    }

    /// A TOML value: a number (read through its shortest decimal form, so
    /// `0.0079` is exactly 7,900 millionths) or a string.
    fn from_toml(value: &toml::Value) -> Result<Money, String> {
        match value {
            toml::Value::Integer(i) if *i >= 0 => Money::parse(&i.to_string()),
            toml::Value::Float(f) if f.is_finite() && *f >= 0.0 => Money::parse(&format!("{f}")),
            toml::Value::String(s) => Money::parse(s),
            toml::Value::Integer(_) | toml::Value::Float(_) => {
                Err("a price cannot be negative".into())
            }
            other => Err(format!(
                "expected an amount such as 0.35, found {}",
                other.type_str()
            )),
        }
    }
}

/// `1234.5`, `0.0079`: at least two decimals, more only when they are not zero.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.0 / MICROS, (self.0 % MICROS).abs());
        let sign = if self.0 < 0 && whole == 0 { "-" } else { "" };
        let mut decimals = format!("{fraction:06}");
        while decimals.len() > 2 && decimals.ends_with('0') {
            decimals.pop();
        }
        write!(f, "{sign}{whole}.{decimals}")
    }
}

/// Exact in JSON: the decimal as a string (a float would not be).
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// An ISO 4217 code: three capital letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Currency(String);

impl Currency {
    pub fn parse(text: &str) -> Result<Currency, String> {
        let code = text.trim().to_ascii_uppercase();
        if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency(code))
        } else {
            Err(format!(
                "{text:?} is not a currency code: write three letters such as MXN or USD"
            ))
        }
    }

    pub fn code(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One channel's prices: per country, and a default for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelPrices {
    pub by_country: BTreeMap<Country, Money>,
    pub default: Option<Money>,
}

/// `[prices]`: per SMS segment and per e-mail, by destination country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    pub currency: Currency,
    pub sms: ChannelPrices,
    pub email: ChannelPrices,
    /// A run whose estimate is over this is refused.
    pub budget: Option<Money>,
}

/// A mistake in `[prices]`, naming the file, table and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: [{table}] {key}: {reason}")]
pub struct PriceError {
    pub file: String,
    pub table: String,
    pub key: String,
    pub reason: String,
}

impl PriceTable {
    /// Reads the `[prices]` table of `file` (named in errors).
    pub fn from_toml(table: &toml::Table, file: &str) -> Result<PriceTable, PriceError> {
        let error = |table: &str, key: &str, reason: String| PriceError {
            file: file.to_string(),
            table: table.to_string(),
            key: key.to_string(),
            reason,
        };
        let mut currency = None;
        let mut budget = None;
        let (mut sms, mut email) = (ChannelPrices::default(), ChannelPrices::default());
        for (key, value) in table {
            match key.as_str() {
                "currency" => {
                    let text = value.as_str().ok_or_else(|| {
                        error(
                            "prices",
                            key,
                            "write the currency as text, e.g. \"MXN\"".into(),
                        )
                    })?;
                    currency = Some(Currency::parse(text).map_err(|e| error("prices", key, e))?);
                }
                "budget" => {
                    budget = Some(Money::from_toml(value).map_err(|e| error("prices", key, e))?)
                }
                "sms" | "email" => {
                    let name = format!("prices.{key}");
                    let prices = value.as_table().ok_or_else(|| {
                        error(&name, "", "expected a table such as MX = 0.35".into())
                    })?;
                    let parsed = channel_prices(prices).map_err(|(k, e)| error(&name, &k, e))?;
                    if key == "sms" {
                        sms = parsed;
                    } else {
                        email = parsed;
                    }
                }
                _ => {
                    return Err(error(
                        "prices",
                        key,
                        "unknown key: use currency, budget, [prices.sms] or [prices.email]".into(),
                    ))
                }
            }
        }
        let currency = currency.ok_or_else(|| {
            error(
                "prices",
                "currency",
                "missing: name the currency of the prices, e.g. currency = \"MXN\"".into(),
            )
        })?;
        Ok(PriceTable {
            currency,
            sms,
            email,
            budget,
        })
    }

    pub fn channel(&self, channel: ChannelKind) -> &ChannelPrices {
        match channel {
            ChannelKind::Sms => &self.sms,
            ChannelKind::Email => &self.email,
        }
    }

    /// The price of one billed unit (an SMS segment, an e-mail) to `country`;
    /// `None` when neither the country nor a default has one.
    pub fn price(&self, channel: ChannelKind, country: Option<Country>) -> Option<Money> {
        let prices = self.channel(channel);
        country
            .and_then(|c| prices.by_country.get(&c).copied())
            .or(prices.default)
    }
}

fn channel_prices(table: &toml::Table) -> Result<ChannelPrices, (String, String)> {
    let mut prices = ChannelPrices::default();
    for (key, value) in table {
        let money = Money::from_toml(value).map_err(|e| (key.clone(), e))?;
        if key == "default" {
            prices.default = Some(money);
            continue;
        }
        let country = Country::parse(key).map_err(|e| (key.clone(), e.to_string()))?;
        if prices.by_country.insert(country, money).is_some() {
            return Err((key.clone(), format!("{country} has two prices")));
        }
    }
    Ok(prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<PriceTable, PriceError> {
        let parsed: toml::Table = toml::from_str(text).unwrap();
        PriceTable::from_toml(parsed["prices"].as_table().unwrap(), "aviso.toml")
    }

    #[test]
    fn amounts_are_exact_millionths() {
        assert_eq!(Money::parse("0.0079").unwrap().micros(), 7_900);
        assert_eq!(Money::parse("1500").unwrap().micros(), 1_500_000_000);
        assert_eq!(Money::parse("0.35").unwrap().to_string(), "0.35");
        assert_eq!(Money::from_micros(7_900).to_string(), "0.0079");
        assert_eq!(Money::from_micros(1_234_500_000).to_string(), "1234.50");
        assert!(Money::parse("0.0000001").is_err());
        assert!(Money::parse("-1").is_err());
        assert!(Money::parse("1e3").is_err());
        // A million US segments: the float sum drifts, the micro-units do not.
        let price = Money::parse("0.0079").unwrap();
        let total = (0..1_000_000).fold(Money::ZERO, |sum, _| sum.plus(price));
        assert_eq!(total.to_string(), "7900.00");
    }

    #[test]
    fn the_table_reads_countries_defaults_and_budget() {
        let prices = table(
            "[prices]\ncurrency = \"mxn\"\nbudget = 1500\n[prices.sms]\nMX = 0.35\nUS = 0.0079\ndefault = 1\n[prices.email]\ndefault = 0.0\n",
        )
        .unwrap();
        assert_eq!(prices.currency.code(), "MXN");
        assert_eq!(prices.budget, Some(Money::from_micros(1_500_000_000)));
        let us = Country::parse("US").ok();
        let es = Country::parse("ES").ok();
        assert_eq!(
            prices.price(ChannelKind::Sms, us),
            Some(Money::from_micros(7_900))
        );
        assert_eq!(
            prices.price(ChannelKind::Sms, es),
            Some(Money::from_micros(1_000_000))
        );
        assert_eq!(prices.price(ChannelKind::Email, us), Some(Money::ZERO));
        let no_default = table("[prices]\ncurrency = \"MXN\"\n[prices.sms]\nMX = 0.35\n").unwrap();
        assert_eq!(no_default.price(ChannelKind::Sms, us), None);
    }

    #[test]
    fn mistakes_name_the_file_table_and_key() {
        let e = table("[prices]\ncurrency = \"MXN\"\n[prices.sms]\nXX = 0.35\n").unwrap_err();
        assert_eq!((e.table.as_str(), e.key.as_str()), ("prices.sms", "XX"));
        assert!(
            e.to_string()
                .starts_with("aviso.toml: [prices.sms] XX: unknown country"),
            "{e}"
        );
        let e = table("[prices]\ncurrency = \"MXN\"\n[prices.sms]\nUS = -0.1\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("[prices.sms] US: a price cannot be negative"),
            "{e}"
        );
        let e = table("[prices]\n[prices.sms]\nUS = 0.1\n").unwrap_err();
        assert_eq!(e.key, "currency");
        let e = table("[prices]\ncurrency = \"pesos\"\n").unwrap_err();
        assert_eq!(e.key, "currency");
        let e =
            table("[prices]\ncurrency = \"MXN\"\n[prices.email]\nUS = \"gratis\"\n").unwrap_err();
        assert!(e.to_string().contains("[prices.email] US"), "{e}");
    }
}
