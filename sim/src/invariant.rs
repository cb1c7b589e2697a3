//! Named invariants, so a failed drill says which property broke.
//!
//! A scenario's hosts check their invariants and fail the run by returning a
//! [`Violation`] as turmoil's error; `World::run` takes it back out by type and
//! adds what only the world knows — a host panicked, the run outlived its
//! sim-time budget (liveness), a host failed with a plain error, the schedule
//! could not run. The value travels unchanged into the run report, the failure
//! file, the shrinker (which must keep the *same* invariant failing while it
//! simplifies a schedule) and sweep summaries: nothing reads an invariant back
//! out of a message.

use std::fmt;

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
    /// Every counter a subsystem moved during the run shows its final value in
    /// Nissa's exporter, fed the telemetry Redis holds — or the shortfall is
    /// accounted for by a counted drop on the producer's bus.
    TelemetryComplete,
    /// After the last fault is repaired, the work completes within a bound; and
    /// sim time keeps moving (no loop logs past
    /// [`crate::trace::EVENTS_PER_INSTANT_LIMIT`] events at one instant).
    Liveness,
    /// While a seed is live, Kasmina's isolation check, fed the device's real
    /// host and seed gradients, never found gradient leaking into the host.
    GradientIsolation,
    /// Kasmina's seeds move only as Esper-Lite's lifecycle allows, and its
    /// telemetry counts as active exactly the seeds in forward-pass stages.
    SeedLifecycle,
    /// Every decision Tamiyo issued carries the veto, the warnings and the
    /// blueprint risk that an oracle independent of the risk engine derives from
    /// what the decision was shown, in Esper-Lite's check order.
    RiskGates,
    /// A check specific to the scenario (its own expectations of a fixed
    /// schedule), named so by the host that makes it.
    Scenario,
    /// A host failed with a plain error rather than a named violation: not a
    /// property the drill checks, but the run did not do what it should.
    HostError,
    /// The fault schedule names something the world lacks, so the run never started.
    InvalidSchedule,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Self; 14] = [
        Self::NoPanic,
        Self::OonaLedger,
        Self::WalAcknowledged,
        Self::RollbackRestores,
        Self::AlertsMatch,
        Self::TelemetryBudget,
        Self::TelemetryComplete,
        Self::Liveness,
        Self::GradientIsolation,
        Self::SeedLifecycle,
        Self::RiskGates,
        Self::Scenario,
        Self::HostError,
        Self::InvalidSchedule,
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
            Self::TelemetryComplete => "telemetry-complete",
            Self::Liveness => "liveness",
            Self::GradientIsolation => "gradient-isolation",
            Self::SeedLifecycle => "seed-lifecycle",
            Self::RiskGates => "risk-gates",
            Self::Scenario => "scenario",
            Self::HostError => "host-error",
            Self::InvalidSchedule => "invalid-schedule",
        }
    }

    /// A violation of this invariant.
    pub fn violated(self, detail: impl Into<String>) -> Violation {
        Violation { invariant: self, detail: detail.into() }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A broken invariant and what was seen. Hosts return it boxed as turmoil's
/// error to fail the run; turmoil passes a host's error through untouched, so
/// the world gets this very value back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "invariant {} violated: {}", self.invariant, self.detail)
    }
}

impl std::error::Error for Violation {}
