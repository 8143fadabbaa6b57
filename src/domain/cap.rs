//! The frequency cap: at most N messages per period to one recipient on one
//! channel, counted across campaigns (`2/7d`: two a week).

use std::fmt;

use super::{vocabulary, Invalid};

const HOUR_MS: i64 = 3_600_000;
const UNITS: [(char, i64); 3] = [('w', 7 * 24 * HOUR_MS), ('d', 24 * HOUR_MS), ('h', HOUR_MS)];
/// No period longer than a year: the cap is about pestering, not history.
const MAX_PERIOD_MS: i64 = 366 * 24 * HOUR_MS;
const MAX_COUNT: u32 = 1000;
const ACCEPTED: &str = "write it as COUNT/PERIOD with the period in h (hours), d (days) or w (weeks), e.g. 2/7d (two a week) or 1/24h";

/// N messages per period, per recipient and channel. Valid by construction:
/// a count of 1 to 1000 and a period of an hour to a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FrequencyCap {
    count: u32,
    period_ms: i64,
}

impl FrequencyCap {
    pub fn parse(input: &str) -> Result<FrequencyCap, Invalid> {
        let text = input.trim();
        let refuse = |why: &str| Invalid::new(format!("frequency cap {text:?}: {why}; {ACCEPTED}"));
        let (count, period) = text
            .split_once('/')
            .ok_or_else(|| refuse("there is no '/'"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| refuse("the count before '/' is not a whole number"))?;
        let period = period.trim().to_ascii_lowercase();
        let unit = period.chars().last().unwrap_or(' ');
        let Some((_, unit_ms)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(refuse("the period's unit is not h, d or w"));
        };
        let amount = &period[..period.len() - 1];
        // "/d" means one day.
        let amount: i64 = match amount.trim() {
            "" => 1,
            n => n
                .parse()
                .map_err(|_| refuse("the period before its unit is not a whole number"))?,
        };
        FrequencyCap::new(count, amount.saturating_mul(*unit_ms)).map_err(|e| refuse(&e.0))
    }

    pub fn new(count: u32, period_ms: i64) -> Result<FrequencyCap, Invalid> {
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(Invalid::new(format!(
                "the count must be 1 to {MAX_COUNT} (to send nothing, do not start the campaign)"
            )));
        }
        if !(HOUR_MS..=MAX_PERIOD_MS).contains(&period_ms) || period_ms % HOUR_MS != 0 {
            return Err(Invalid::new(
                "the period must be whole hours, from 1h to 366d".to_string(),
            ));
        }
        Ok(FrequencyCap { count, period_ms })
    }

    /// Messages allowed per period.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn period_ms(&self) -> i64 {
        self.period_ms
    }
}

impl fmt::Display for FrequencyCap {
    /// In the largest unit that divides the period: `1/7d` reads back as `1/1w`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, ms) = UNITS
            .iter()
            .find(|(_, ms)| self.period_ms % ms == 0)
            .unwrap_or(&UNITS[2]);
        write!(f, "{}/{}{unit}", self.count, self.period_ms / ms)
    }
}

impl std::str::FromStr for FrequencyCap {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FrequencyCap::parse(s)
    }
}

impl TryFrom<String> for FrequencyCap {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        FrequencyCap::parse(&s)
    }
}

impl From<FrequencyCap> for String {
    fn from(cap: FrequencyCap) -> String {
        cap.to_string()
    }
}

vocabulary!(
    /// What happens to a message that would exceed its campaign's cap: held
    /// for good as `capped`, or deferred until the recipient's period leaves room.
    WhenCapped {
        Hold => "hold",
        Defer => "defer",
    }
);

/// A campaign's cap and what to do with the messages over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CapPolicy {
    pub cap: FrequencyCap,
    pub when: WhenCapped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_parse_in_hours_days_and_weeks() {
        let cap = FrequencyCap::parse("2/7d").unwrap();
        assert_eq!((cap.count(), cap.period_ms()), (2, 7 * 24 * HOUR_MS));
        assert_eq!(cap.to_string(), "2/1w");
        assert_eq!(
            FrequencyCap::parse(" 1 / 24H ").unwrap().to_string(),
            "1/1d"
        );
        assert_eq!(
            FrequencyCap::parse("1/d").unwrap().period_ms(),
            24 * HOUR_MS
        );
        assert_eq!(FrequencyCap::parse("3/36h").unwrap().to_string(), "3/36h");
        let back: FrequencyCap = FrequencyCap::parse("5/2w")
            .unwrap()
            .to_string()
            .parse()
            .unwrap();
        assert_eq!(back, FrequencyCap::parse("5/14d").unwrap());
    }

    #[test]
    fn bad_caps_say_what_is_accepted() {
        for (input, why) in [
            ("2/7x", "unit is not h, d or w"),
            ("2", "no '/'"),
            ("two/7d", "count before '/'"),
            ("2/sevend", "period before its unit"),
            ("0/1d", "count must be 1 to 1000"),
            ("-1/1d", "count before '/'"),
            ("1001/1d", "count must be 1 to 1000"),
            ("1/0d", "from 1h to 366d"),
            ("1/400d", "from 1h to 366d"),
            ("1/99999999999999999w", "from 1h to 366d"),
            ("", "no '/'"),
            ("1/", "unit is not h, d or w"),
        ] {
            let e = FrequencyCap::parse(input).unwrap_err().0;
            assert!(e.contains(why), "{input:?}: {e}");
            assert!(e.contains("e.g. 2/7d"), "{input:?}: {e}");
        }
    }
}
