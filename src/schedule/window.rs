//! Send windows in the recipient's local time: an SMS at 3 a.m. is worse than
//! none. A contact's country may span several zones (the US, Canada, Mexico…);
//! the window must then hold in every main zone of that country.

use std::fmt;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::domain::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Window {
    /// `09:00-20:00`: from the first time, up to (not including) the second.
    pub fn parse(s: &str) -> Result<Window, Invalid> {
        let bad = || {
            Invalid::new(format!(
                "window {s:?}: write it as HH:MM-HH:MM, e.g. 09:00-20:00"
            ))
        };
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let start = parse_hhmm(a).ok_or_else(bad)?;
        let end = parse_hhmm(b).ok_or_else(bad)?;
        if start >= end {
            return Err(Invalid::new(format!(
                "window {s:?}: the start must come before the end (windows past midnight are not supported)"
            )));
        }
        Ok(Window { start, end })
    }

    /// Whether `at` falls inside the window in every one of `zones`.
    pub fn is_open(&self, zones: &[Tz], at: DateTime<Utc>) -> bool {
        zones.iter().all(|tz| {
            let local = at.with_timezone(tz).time();
            local >= self.start && local < self.end
        })
    }

    /// The first moment at or after `at` when the window is open in every zone:
    /// the window opens when the last zone's opens, so only those moments (and
    /// `at` itself) need checking. `None` if the zones' windows never overlap.
    pub fn next_open(&self, zones: &[Tz], at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(zones, at) {
            return Some(at);
        }
        let mut candidates: Vec<DateTime<Utc>> = Vec::new();
        for tz in zones {
            let today = at.with_timezone(tz).date_naive();
            for days in 0..3 {
                let day = today + Duration::days(days);
                if let Some(local) = tz.from_local_datetime(&day.and_time(self.start)).earliest() {
                    let utc = local.with_timezone(&Utc);
                    if utc >= at {
                        candidates.push(utc);
                    }
                }
            }
        }
        candidates.sort();
        candidates.into_iter().find(|c| self.is_open(zones, *c))
    }
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()?;
    (t.second() == 0).then_some(t)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::zones::zones_of;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window() -> Window {
        Window::parse("09:00-20:00").unwrap()
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(window().to_string(), "09:00-20:00");
        assert!(Window::parse("20:00-09:00").is_err());
        assert!(Window::parse("9-20").is_err());
        assert!(Window::parse("").is_err());
    }

    #[test]
    fn a_us_recipient_needs_the_window_in_eastern_and_pacific_time() {
        let us = zones_of("US").unwrap();
        // 16:00 UTC after the clocks change: 11:00 New York, 08:00 Los Angeles: too early in the west.
        assert!(!window().is_open(us, utc("2021-11-10T16:00:00Z")));
        // 17:00 UTC: 12:00 New York, 09:00 Los Angeles.
        assert!(window().is_open(us, utc("2021-11-10T17:00:00Z")));
        // 00:59 UTC next day: 19:59 New York, 16:59 Los Angeles.
        assert!(window().is_open(us, utc("2021-11-11T00:59:00Z")));
        // 01:00 UTC: 20:00 in New York: closed.
        assert!(!window().is_open(us, utc("2021-11-11T01:00:00Z")));
        assert_eq!(
            window().next_open(us, utc("2021-11-11T01:00:00Z")),
            Some(utc("2021-11-11T17:00:00Z"))
        );
    }

    #[test]
    fn madrid_and_tokyo_have_their_own_hours() {
        let es = zones_of("ES").unwrap();
        let jp = zones_of("JP").unwrap();
        // 08:30 UTC in November: 09:30 Madrid, 08:30 Canaries: closed for Spain.
        assert!(!window().is_open(es, utc("2021-11-10T08:30:00Z")));
        assert!(window().is_open(es, utc("2021-11-10T09:00:00Z")));
        // Tokyo is UTC+9: 00:00–11:00 UTC is 09:00–20:00 there.
        assert!(window().is_open(jp, utc("2021-11-10T00:00:00Z")));
        assert!(!window().is_open(jp, utc("2021-11-10T11:00:00Z")));
        assert_eq!(
            window().next_open(jp, utc("2021-11-10T11:00:00Z")),
            Some(utc("2021-11-11T00:00:00Z"))
        );
    }

    #[test]
    fn zones_whose_windows_never_overlap_have_no_opening() {
        let narrow = Window::parse("09:00-10:00").unwrap();
        let zones = [Tz::Asia__Tokyo, Tz::America__New_York];
        assert_eq!(narrow.next_open(&zones, utc("2021-11-10T00:00:00Z")), None);
    }

    #[test]
    fn daylight_saving_is_followed() {
        let us = zones_of("US").unwrap();
        // In July Los Angeles is UTC-7: 16:00 UTC is 09:00 there.
        assert!(window().is_open(us, utc("2021-07-07T16:00:00Z")));
    }
}
