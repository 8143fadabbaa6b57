//! Named rows the store returns where a tuple would make callers count fields.

use crate::campaigns::StatusCounts;

/// A contact holding a phone number, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PhoneHolder {
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// An activity's programmed total for one entity.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActivityTarget {
    pub activity_id: i64,
    pub entity: String,
    pub programmed: i64,
}

/// Work recorded against an activity on a day (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActivityRecord {
    pub activity_id: i64,
    pub done: i64,
    pub date: String,
}

/// A campaign's latest attempts, as auto-pause weighs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentFailures {
    /// Attempts looked at.
    pub attempts: i64,
    /// Of those, the ones that failed for good.
    pub failed: i64,
    /// The last failure's code and reason.
    pub last: Option<String>,
}

/// Messages waiting for their recipients' send window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowWait {
    pub waiting: i64,
    /// When the next window opens (ms), if any message waits.
    pub next_opens: Option<i64>,
}

/// A campaign's messages by status, and the contacts left out for having no
/// address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignCounts {
    pub messages: StatusCounts,
    pub no_address: i64,
}

/// When a provider last asked any worker to slow down (ms; 0: never).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SlowDown {
    pub name: String,
    pub slowed_at: i64,
}
