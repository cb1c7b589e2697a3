//! Named invariants, so a failed drill says which property broke.
//!
//! A scenario's hosts check their invariants and fail the run with a
//! [`Violation`]; the world adds two of its own — no host panicked, and the run
//! finished inside its sim-time budget (liveness). [`Invariant::of`] reads the
//! name back from a failed run, for failure files, for the shrinker (which must
//! keep the *same* invariant failing while it simplifies a schedule) and for
//! sweep summaries.

use std::fmt;

use crate::report::Outcome;

/// The properties drills check, in the order a run meets them. Safety first
/// (nothing lost, nothing corrupted), then liveness (the loop recovers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// No host panicked.
    NoPanic,
    /// Oona's ledger balances: published = handled + counted drops (+ the loss
    /// Redis's fsync window allows for non-critical messages).
    OonaLedger,
    /// Every acknowledged WAL record is recovered after a crash.
    WalAcknowledged,
    /// A rolled-back epoch leaves the model exactly as it was before the fault.
    RollbackRestores,
    /// Every alert fired, escalated and cleared in the evaluation an oracle
    /// independent of the engine reads off the rule table.
    AlertsMatch,
    /// Every telemetry packet that reached Redis fits Leyline's 280-byte budget.
    TelemetryBudget,
    /// After the last fault is repaired, the work completes within a bound.
    Liveness,
    /// A check specific to the scenario (its own expectations of a fixed schedule).
    Scenario,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Self; 8] = [
        Self::NoPanic,
        Self::OonaLedger,
        Self::WalAcknowledged,
        Self::RollbackRestores,
        Self::AlertsMatch,
        Self::TelemetryBudget,
        Self::Liveness,
        Self::Scenario,
    ];

    /// The kebab-case name used in messages and files.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoPanic => "no-panic",
            Self::OonaLedger => "oona-ledger",
            Self::WalAcknowledged => "wal-acknowledged",
            Self::RollbackRestores => "rollback-restores",
            Self::AlertsMatch => "alerts-match",
            Self::TelemetryBudget => "telemetry-budget",
            Self::Liveness => "liveness",
            Self::Scenario => "scenario",
        }
    }

    /// A violation of this invariant.
    pub fn violated(self, detail: impl Into<String>) -> Violation {
        Violation { invariant: self, detail: detail.into() }
    }

    /// Which invariant a run broke, if it failed: the one its error names, a panic,
    /// an exhausted sim-time budget (liveness), or else the scenario's own check.
    pub fn of(outcome: &Outcome) -> Option<Self> {
        let Outcome::Failed { error } = outcome else { return None };
        if error.starts_with(PANIC_PREFIX) {
            return Some(Self::NoPanic);
        }
        if error.contains(BUDGET_EXHAUSTED) {
            return Some(Self::Liveness);
        }
        let named = Self::ALL.into_iter().find(|invariant| error.contains(&Violation::prefix(*invariant)));
        Some(named.unwrap_or(Self::Scenario))
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// How the world reports a panicking host (see `World::run`).
pub(crate) const PANIC_PREFIX: &str = "a host panicked";
/// What turmoil says when a run outlives its sim-time budget.
const BUDGET_EXHAUSTED: &str = "Ran for duration";

/// A broken invariant and what was seen. Hosts return it (as a string, through
/// turmoil's error) to fail the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

impl Violation {
    fn prefix(invariant: Invariant) -> String {
        format!("invariant {invariant} violated:")
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", Self::prefix(self.invariant), self.detail)
    }
}

impl std::error::Error for Violation {}

impl From<Violation> for String {
    fn from(violation: Violation) -> Self {
        violation.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(error: &str) -> Outcome {
        Outcome::Failed { error: error.to_owned() }
    }

    #[test]
    fn reads_the_broken_invariant_back_from_a_failed_run() {
        assert_eq!(Invariant::of(&Outcome::Passed), None);
        let violation = Invariant::WalAcknowledged.violated("3 answered, 2 durable");
        assert_eq!(Invariant::of(&failed(&violation.to_string())), Some(Invariant::WalAcknowledged));
        assert_eq!(Invariant::of(&failed("a host panicked: boom")), Some(Invariant::NoPanic));
        assert_eq!(
            Invariant::of(&failed("Ran for duration: 120s steps: 120000 without completing")),
            Some(Invariant::Liveness)
        );
        assert_eq!(Invariant::of(&failed("loss did not fall")), Some(Invariant::Scenario));
    }
}
