//! Planted bugs: deliberate, plausible defects in the real code paths, one per
//! drill invariant, so a test can show that each invariant can fail.
//!
//! TEST ONLY. A run arms at most one bug ([`Planted`]), chosen at run time and
//! passed down through the configs the real code already takes (no global or
//! thread-local switch), so one build runs every bug's test. The bug sites ask
//! [`Planted::armed`], which is `false` whatever was armed unless the crate is
//! built with the `planted-bugs` feature: in any other build every site compiles
//! to the correct code.

use std::fmt;
use std::str::FromStr;

/// One planted bug, named for what it gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlantedBug {
    /// The WAL acknowledges a group commit without syncing it (`wal-acknowledged`).
    WalAckBeforeSync,
    /// A rollback restores every tensor of the snapshot but the last (`rollback-restores`).
    RollbackSkipsTensor,
    /// Nissa's alert engine fires one evaluation after the rule's condition held
    /// for its count (`alerts-match`).
    AlertFiresLate,
    /// Oona's consumer skips the XACK of a redelivered entry, taking it to have
    /// been acknowledged at its first delivery (`oona-ledger`).
    ConsumerLeavesPending,
    /// Oona drops a critical message from its outbox as soon as XADD returns,
    /// before Redis has surely persisted it (`oona-ledger`).
    OutboxForgetsCritical,
    /// Tamiyo's client takes a refusal (a whole, signed answer) to have kept its
    /// connection, and panics when it has not — after a clock jump makes Tamiyo
    /// refuse Tolaria's frames (`no-panic`).
    PanicOnRarePath,
    /// Tamiyo's client stops dialling after one failed dial (a breaker that
    /// never half-opens), so the loop stays cut off once the link heals (`liveness`).
    LivelockAfterRepair,
    /// Tolaria sends an epoch's metrics raw when its failure counters moved,
    /// bypassing the builder's 280-byte cap (`telemetry-budget`).
    TelemetrySentRaw,
    /// The telemetry builder opens a new part for the metric that overflowed the
    /// last one but never writes the metric into it (`telemetry-complete`).
    SplitLosesMetric,
    /// Oona's publisher snapshot carries `oona.publish_total` as it stood before
    /// the last publish was counted, so that increment never reaches Nissa
    /// (`telemetry-complete`, oona-ledger).
    SnapshotLosesIncrement,
    /// Tamiyo's field-report store never reopens its log after a failed fsync
    /// poisoned it, so every later report is refused until a restart (the
    /// behaviour before issue 22; shown by the poisoned-log drill).
    PoisonedLogNeverReopens,
    /// The synthetic device's blend takes the host without detaching it, so a
    /// live seed's loss trains host parameters (`gradient-isolation`).
    BlendLeaksIntoHost,
    /// Kasmina's `kasmina.seeds.active` leaves out fossilized seeds (`seed-lifecycle`).
    ActiveSkipsFossilized,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [Self; 13] = [
        Self::WalAckBeforeSync,
        Self::RollbackSkipsTensor,
        Self::AlertFiresLate,
        Self::ConsumerLeavesPending,
        Self::OutboxForgetsCritical,
        Self::PanicOnRarePath,
        Self::LivelockAfterRepair,
        Self::TelemetrySentRaw,
        Self::SplitLosesMetric,
        Self::SnapshotLosesIncrement,
        Self::PoisonedLogNeverReopens,
        Self::BlendLeaksIntoHost,
        Self::ActiveSkipsFossilized,
    ];

    /// The kebab-case name used on the command line and in failure files.
    pub fn name(self) -> &'static str {
        match self {
            Self::WalAckBeforeSync => "wal-ack-before-sync",
            Self::RollbackSkipsTensor => "rollback-skips-tensor",
            Self::AlertFiresLate => "alert-fires-late",
            Self::ConsumerLeavesPending => "consumer-leaves-pending",
            Self::OutboxForgetsCritical => "outbox-forgets-critical",
            Self::PanicOnRarePath => "panic-on-rare-path",
            Self::LivelockAfterRepair => "livelock-after-repair",
            Self::TelemetrySentRaw => "telemetry-sent-raw",
            Self::SplitLosesMetric => "split-loses-metric",
            Self::SnapshotLosesIncrement => "snapshot-loses-increment",
            Self::PoisonedLogNeverReopens => "poisoned-log-never-reopens",
            Self::BlendLeaksIntoHost => "blend-leaks-into-host",
            Self::ActiveSkipsFossilized => "active-skips-fossilized",
        }
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A name that is no planted bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no planted bug is called {name:?}; the planted bugs are: {list}", list = bug_names())]
pub struct UnknownPlantedBug {
    pub name: String,
}

fn bug_names() -> String {
    PlantedBug::ALL.map(PlantedBug::name).join(", ")
}

impl FromStr for PlantedBug {
    type Err = UnknownPlantedBug;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|bug| bug.name() == name).ok_or_else(|| UnknownPlantedBug { name: name.to_owned() })
    }
}

/// The bug a run arms, if any; carried in configs down to the bug sites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planted(Option<PlantedBug>);

impl Planted {
    /// No bug: the code as shipped.
    pub const NONE: Self = Self(None);

    /// Whether this build can arm a bug at all (the `planted-bugs` feature).
    pub const AVAILABLE: bool = cfg!(feature = "planted-bugs");

    /// Arms `bug` (a no-op at every site unless [`Self::AVAILABLE`]).
    pub fn bug(bug: Option<PlantedBug>) -> Self {
        Self(bug)
    }

    /// The bug asked for, armed or not.
    pub fn asked(self) -> Option<PlantedBug> {
        self.0
    }

    /// Whether `bug` is armed for this run: always `false` without the feature.
    pub fn armed(self, bug: PlantedBug) -> bool {
        Self::AVAILABLE && self.0 == Some(bug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_to_their_bug() {
        for bug in PlantedBug::ALL {
            assert_eq!(bug.name().parse::<PlantedBug>(), Ok(bug));
            assert_eq!(serde_json::to_string(&bug).ok(), Some(format!("\"{}\"", bug.name())));
        }
        assert!("wal".parse::<PlantedBug>().is_err());
    }

    #[test]
    fn a_bug_is_armed_only_in_a_planted_bugs_build() {
        let planted = Planted::bug(Some(PlantedBug::WalAckBeforeSync));
        assert_eq!(planted.armed(PlantedBug::WalAckBeforeSync), cfg!(feature = "planted-bugs"));
        assert!(!planted.armed(PlantedBug::RollbackSkipsTensor));
        assert!(!Planted::NONE.armed(PlantedBug::WalAckBeforeSync));
    }
}
