//! What a run leaves behind.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use esper_core::planted::Planted;

use crate::fault::FaultSchedule;
use crate::invariant::{Invariant, Violation};
use crate::scenario::replay_command;
use crate::trace::format_sim_time;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every host finished cleanly and the scenario's own checks held.
    Passed,
    /// An invariant broke: a host's check, a panic, an exhausted sim-time
    /// budget, a host's plain error or an unusable schedule (see [`Invariant`]).
    Failed { violation: Violation },
}

impl Outcome {
    /// The invariant a failed run broke; `None` for a pass.
    pub fn invariant(&self) -> Option<Invariant> {
        match self {
            Self::Passed => None,
            Self::Failed { violation } => Some(violation.invariant),
        }
    }
}

/// The result of one run: enough to compare it with another run and to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Scenario name, as `esper scenarios` lists it.
    pub scenario: String,
    /// The run's seed.
    pub seed: u64,
    /// The faults the run was subjected to.
    pub schedule: FaultSchedule,
    /// The planted bug the run armed (test builds only).
    pub planted: Planted,
    /// The world's hosts, in name order (the lanes of a timeline).
    pub hosts: Vec<String>,
    /// SHA-256 of the canonical trace, hex.
    pub hash: String,
    /// Events in the trace.
    pub events: u64,
    /// Sim time when the run ended.
    pub sim_elapsed: Duration,
    /// Passed or failed, with why.
    pub outcome: Outcome,
    /// Every trace line, when the run kept them (`TraceMode::Full`).
    pub lines: Vec<String>,
    /// The last trace lines, for failure reports.
    pub tail: Vec<String>,
    /// What the hosts counted into the world's [`crate::Tally`].
    pub tally: BTreeMap<String, u64>,
    /// The cargo features the scenario needs (see
    /// [`crate::SimScenario::cargo_features`]), for the replay command.
    pub cargo_features: &'static [&'static str],
}

impl RunReport {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }

    /// The command that reruns exactly this run.
    pub fn replay_command(&self) -> String {
        replay_command(&self.scenario, self.seed, self.planted, self.cargo_features)
    }
}

/// One line for a pass; seed, schedule, error, trace tail and the replay command
/// for a failure — in that order, so the seed is the first thing a reader sees.
impl fmt::Display for RunReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "seed={} scenario={} hash={} events={} sim_time={}s",
            self.seed,
            self.scenario,
            self.hash,
            self.events,
            format_sim_time(self.sim_elapsed)
        )?;
        let Outcome::Failed { violation } = &self.outcome else {
            return Ok(());
        };
        writeln!(formatter, " FAILED")?;
        writeln!(formatter, "  schedule: {}", self.schedule)?;
        writeln!(formatter, "  {violation}")?;
        writeln!(formatter, "  last {} trace events:", self.tail.len())?;
        for line in &self.tail {
            writeln!(formatter, "    {line}")?;
        }
        write!(formatter, "  replay: {}", self.replay_command())
    }
}
