//! Time in campaigns: when runs are due (one-off or monthly), the grace after
//! which a missed run is recorded as `missed` rather than sent late, expiry, and
//! send windows in the recipient's local time.

mod scheduler;
pub mod window;
pub mod zones;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

pub use scheduler::{due_periods, next_due, tick, ScheduleSettings, Scheduled};
pub use window::Window;

use crate::domain::Invalid;

pub fn parse_zone(name: &str) -> Result<Tz, Invalid> {
    name.parse::<Tz>().map_err(|_| {
        Invalid::new(format!(
            "unknown time zone {name:?} (e.g. {})",
            crate::config::DEFAULT_ZONE.name()
        ))
    })
}

/// `2021-09-01T10:00:00-05:00` (RFC 3339), or `2021-09-01 10:00` read in `tz`.
pub fn parse_at(s: &str, tz: Tz) -> Result<DateTime<Utc>, Invalid> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN)))
        .map_err(|_| {
            Invalid::new(format!(
                "time {s:?}: write YYYY-MM-DD HH:MM (in {tz}) or an RFC 3339 time such as 2021-09-01T10:00:00-05:00"
            ))
        })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            Invalid::new(format!(
                "{s} does not exist in {tz} (a daylight-saving jump)"
            ))
        })
}

/// When a campaign's unsent messages expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// At a fixed time (ms).
    At(i64),
    /// This long after each run starts (ms): for recurring campaigns.
    After(i64),
}

/// `--expires 2022-03-10 23:59` or `--expires 72h`.
pub fn parse_expires(s: &str, tz: Tz) -> Result<Expiry, Invalid> {
    if let Ok(d) = humantime::parse_duration(s.trim()) {
        return Ok(Expiry::After(d.as_millis() as i64));
    }
    parse_at(s, tz)
        .map(|t| Expiry::At(t.timestamp_millis()))
        .map_err(|_| {
            Invalid::new(format!(
                "--expires {s:?}: give a time (YYYY-MM-DD HH:MM) or a duration (72h, 3d)"
            ))
        })
}

/// A monthly schedule: day of the month (clamped to the month's last day) and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Monthly {
    pub day: u32,
    pub time: NaiveTime,
}

impl Monthly {
    pub fn new(day: u32, time: &str) -> Result<Monthly, Invalid> {
        if !(1..=31).contains(&day) {
            return Err(Invalid::new(format!("--day {day}: use 1 to 31")));
        }
        let time = NaiveTime::parse_from_str(time.trim(), "%H:%M")
            .map_err(|_| Invalid::new(format!("--time {time:?}: write HH:MM, e.g. 10:00")))?;
        Ok(Monthly { day, time })
    }

    /// When the run of `year-month` is due.
    pub fn due(&self, year: i32, month: u32, tz: Tz) -> Option<DateTime<Utc>> {
        let last = last_day(year, month)?;
        let date = NaiveDate::from_ymd_opt(year, month, self.day.min(last))?;
        tz.from_local_datetime(&date.and_time(self.time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }
}

fn last_day(year: i32, month: u32) -> Option<u32> {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Some(NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()?.day())
}

/// `2021-10`: the key of a monthly run; a campaign has at most one run per key.
pub fn period_key(year: i32, month: u32) -> String {
    format!("{year:04}-{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_configured_zone() {
        let tz = crate::config::DEFAULT_ZONE;
        // Mexico City is UTC-5 in September 2021 (daylight saving until 2022).
        let t = parse_at("2021-09-01 10:00", tz).unwrap();
        assert_eq!(t.to_rfc3339(), "2021-09-01T15:00:00+00:00");
        let t = parse_at("2021-09-01T10:00:00-05:00", tz).unwrap();
        assert_eq!(t.to_rfc3339(), "2021-09-01T15:00:00+00:00");
        assert!(parse_at("mañana", tz).is_err());
    }

    #[test]
    fn expiry_is_a_time_or_a_duration() {
        let tz = crate::config::DEFAULT_ZONE;
        assert_eq!(
            parse_expires("72h", tz).unwrap(),
            Expiry::After(72 * 3_600_000)
        );
        assert!(matches!(
            parse_expires("2022-03-10 23:59", tz).unwrap(),
            Expiry::At(_)
        ));
        assert!(parse_expires("soon", tz).is_err());
    }

    #[test]
    fn monthly_due_dates_clamp_to_the_end_of_the_month() {
        let tz: Tz = "UTC".parse().unwrap();
        let m = Monthly::new(31, "10:00").unwrap();
        assert_eq!(
            m.due(2021, 11, tz).unwrap().to_rfc3339(),
            "2021-11-30T10:00:00+00:00"
        );
        assert_eq!(
            m.due(2022, 2, tz).unwrap().to_rfc3339(),
            "2022-02-28T10:00:00+00:00"
        );
        assert!(Monthly::new(0, "10:00").is_err());
        assert!(Monthly::new(1, "25:00").is_err());
        assert_eq!(period_key(2021, 9), "2021-09");
    }
}
