//! Where a campaign stands, and the one table of which moves are allowed:
//! every caller that changes a campaign's state asks this table for the states
//! it may start from, and the store applies the move only from those.

use crate::domain::vocabulary;

vocabulary!(
    /// Where a campaign stands. `missed`: a one-off campaign whose time passed
    /// (by more than the grace period) while nothing was running.
    CampaignState {
        Draft => "draft",
        Scheduled => "scheduled",
        Running => "running",
        Paused => "paused",
        Completed => "completed",
        Cancelled => "cancelled",
        Missed => "missed",
    }
);

/// What staff, the scheduler or a worker do to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A run starts (`campaign start`, or the scheduler): the audience is frozen.
    Start,
    /// `campaign reschedule`: a new time to run.
    Reschedule,
    /// `campaign pause`, or a run the budget refused.
    Pause,
    /// A worker stops a running campaign that fails or cannot be prepared.
    AutoPause,
    /// `campaign resume`: back to running, or to its time if it never ran.
    Resume,
    /// `campaign cancel`: nothing more is sent.
    Cancel,
    /// `campaign retry`: failed messages go out again.
    Retry,
    /// A one-off campaign whose time passed while nothing ran.
    Miss,
    /// Housekeeping: the last run finished (a monthly campaign waits for its next).
    Complete,
}

use CampaignState::*;

/// (transition, the states it may start from, the states it may lead to).
const TABLE: &[(Transition, &[CampaignState], &[CampaignState])] = &[
    (
        Transition::Start,
        &[Draft, Scheduled, Completed, Missed],
        &[Running],
    ),
    (
        Transition::Reschedule,
        &[Draft, Scheduled, Missed, Completed],
        &[Scheduled],
    ),
    (Transition::Pause, &[Running, Scheduled], &[Paused]),
    (Transition::AutoPause, &[Running], &[Paused]),
    (Transition::Resume, &[Paused], &[Running, Scheduled, Draft]),
    (
        Transition::Cancel,
        &[Draft, Scheduled, Running, Paused],
        &[Cancelled],
    ),
    (
        Transition::Retry,
        &[Completed, Paused, Scheduled],
        &[Running],
    ),
    (Transition::Miss, &[Scheduled], &[Missed]),
    (Transition::Complete, &[Running], &[Completed, Scheduled]),
];

impl Transition {
    pub const ALL: &'static [Transition] = &[
        Transition::Start,
        Transition::Reschedule,
        Transition::Pause,
        Transition::AutoPause,
        Transition::Resume,
        Transition::Cancel,
        Transition::Retry,
        Transition::Miss,
        Transition::Complete,
    ];

    fn row(self) -> (&'static [CampaignState], &'static [CampaignState]) {
        TABLE
            .iter()
            .find(|(t, _, _)| *t == self)
            .map(|(_, from, to)| (*from, *to))
            .unwrap_or((&[], &[]))
    }

    /// The states a campaign may be in for this transition to apply; the
    /// store changes a campaign only if it is still in one of them.
    pub fn from_states(self) -> &'static [CampaignState] {
        self.row().0
    }

    /// The states this transition may lead to.
    pub fn to_states(self) -> &'static [CampaignState] {
        self.row().1
    }
}

impl CampaignState {
    /// Whether `transition` applies to a campaign in this state.
    pub fn allows(self, transition: Transition) -> bool {
        transition.from_states().contains(&self)
    }

    /// Whether some transition moves a campaign from this state to `to`.
    pub fn may_become(self, to: CampaignState) -> bool {
        Transition::ALL
            .iter()
            .any(|t| self.allows(*t) && t.to_states().contains(&to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_has_one_row_of_the_table() {
        for t in Transition::ALL {
            let rows = TABLE.iter().filter(|(r, _, _)| r == t).count();
            assert_eq!(rows, 1, "{t:?}");
            assert!(!t.from_states().is_empty() && !t.to_states().is_empty());
        }
        assert_eq!(TABLE.len(), Transition::ALL.len());
    }

    #[test]
    fn the_state_machine_allows_exactly_these_moves() {
        let allowed: Vec<(CampaignState, CampaignState)> = CampaignState::ALL
            .iter()
            .flat_map(|from| {
                CampaignState::ALL
                    .iter()
                    .filter(|to| from.may_become(**to))
                    .map(|to| (*from, *to))
            })
            .collect();
        let code = |(f, t): &(CampaignState, CampaignState)| format!("{f}->{t}");
        let got: Vec<String> = allowed.iter().map(code).collect();
        assert_eq!(
            got,
            [
                "draft->scheduled",
                "draft->running",
                "draft->cancelled",
                "scheduled->scheduled",
                "scheduled->running",
                "scheduled->paused",
                "scheduled->cancelled",
                "scheduled->missed",
                "running->scheduled",
                "running->paused",
                "running->completed",
                "running->cancelled",
                "paused->draft",
                "paused->scheduled",
                "paused->running",
                "paused->cancelled",
                "completed->scheduled",
                "completed->running",
                "missed->scheduled",
                "missed->running",
            ]
        );
    }

    #[test]
    fn cancelled_is_the_end_and_paused_needs_a_resume_to_start() {
        for t in Transition::ALL {
            assert!(!Cancelled.allows(*t), "{t:?}");
        }
        assert!(!Paused.allows(Transition::Start));
        assert!(Paused.allows(Transition::Resume));
        assert!(!Running.allows(Transition::Resume));
        assert!(Running.allows(Transition::AutoPause));
        assert!(!Scheduled.allows(Transition::AutoPause));
    }
}
