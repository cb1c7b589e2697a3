//! Failure files: everything needed to rerun one failed drill, and nothing else.
//!
//! `esper sweep` writes one per failing seed (`failures/<seed>.json`); `esper
//! replay FILE` reruns it exactly, `esper shrink FILE` minimises it, and a file
//! copied into `tests/drills/regressions/` is replayed by a test forever after.
//! The schedule is stored in full rather than re-derived from the seed, so a
//! file stays valid when the generator changes, and a shrunk file can hold a
//! schedule no seed would draw.

use std::path::{Path, PathBuf};

use esper_core::planted::{Planted, PlantedBug};
use esper_sim::{FaultSchedule, Invariant, Outcome, RunReport, TraceMode, Violation, cargo_run, run_scenario_with};
use serde::{Deserialize, Serialize};

use super::generate::FaultKind;
use crate::registry;

/// The file format's name and version. v2 carries the typed violation (v1 had
/// the invariant's name and the error text apart) and the planted bug, if any.
pub const FAILURE_SCHEMA: &str = "esper.drill.failure/v2";

/// One failed (or, for a regression, once-failed) drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRecord {
    /// Always [`FAILURE_SCHEMA`].
    pub schema: String,
    /// The scenario, as `esper scenarios` names it.
    pub scenario: String,
    /// The run's seed (it also seeds everything the schedule does not decide).
    pub seed: u64,
    /// Whether the schedule came from swarm mode, and the kinds it could use.
    pub swarm: bool,
    pub kinds: Vec<FaultKind>,
    /// The planted bug the run armed (test builds only; `esper replay` re-arms it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planted: Option<PlantedBug>,
    /// The faults.
    pub schedule: FaultSchedule,
    /// The invariant the run broke and what was seen, as the run reported it.
    pub violation: Violation,
    /// The trace hash of the failing run (same commit ⇒ same hash on replay).
    pub hash: String,
    /// The last trace lines before the failure.
    pub trace_tail: Vec<String>,
}

/// A failure file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FailureFileError {
    #[error("cannot read failure file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write failure file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a drill failure file: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{path} has schema {found:?}; this esper reads {FAILURE_SCHEMA:?}")]
    Schema { path: PathBuf, found: String },
    #[error("{path}: {source}")]
    Scenario { path: PathBuf, source: registry::UnknownScenario },
    #[error("{path} arms the planted bug {bug}, which this build cannot arm; rerun with `--features planted-bugs`")]
    PlantedUnavailable { path: PathBuf, bug: PlantedBug },
}

impl FailureRecord {
    /// The record of a failed run (with the bug it armed); `None` if it passed.
    pub fn from_report(report: &RunReport, swarm: bool, kinds: Vec<FaultKind>) -> Option<Self> {
        let Outcome::Failed { violation } = &report.outcome else { return None };
        Some(Self {
            schema: FAILURE_SCHEMA.to_owned(),
            scenario: report.scenario.clone(),
            seed: report.seed,
            swarm,
            kinds,
            planted: report.planted.asked(),
            schedule: report.schedule.clone(),
            violation: violation.clone(),
            hash: report.hash.clone(),
            trace_tail: report.tail.clone(),
        })
    }

    /// Reads and checks a failure file.
    pub fn read(path: &Path) -> Result<Self, FailureFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| FailureFileError::Read { path: path.to_path_buf(), source })?;
        let record: Self = serde_json::from_str(&text)
            .map_err(|source| FailureFileError::Parse { path: path.to_path_buf(), source })?;
        if record.schema != FAILURE_SCHEMA {
            return Err(FailureFileError::Schema { path: path.to_path_buf(), found: record.schema });
        }
        registry::find(&record.scenario)
            .map_err(|source| FailureFileError::Scenario { path: path.to_path_buf(), source })?;
        if let Some(bug) = record.planted.filter(|_| !Planted::AVAILABLE) {
            return Err(FailureFileError::PlantedUnavailable { path: path.to_path_buf(), bug });
        }
        Ok(Self { schedule: FaultSchedule::new(record.schedule.faults().to_vec()), ..record })
    }

    /// Writes the record as pretty JSON, creating the directory.
    pub fn write(&self, path: &Path) -> Result<(), FailureFileError> {
        let write = |source| FailureFileError::Write { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|error| write(std::io::Error::other(error)))?;
        std::fs::write(path, text + "\n").map_err(write)
    }

    /// The invariant the recorded run broke.
    pub fn invariant(&self) -> Invariant {
        self.violation.invariant
    }

    /// The bug the recorded run armed.
    pub fn planted(&self) -> Planted {
        Planted::bug(self.planted)
    }

    /// The command that reruns this record, kept at `path`.
    pub fn replay_command(&self, path: &Path) -> String {
        replay_file_command(path, &self.scenario, self.planted())
    }

    /// Reruns the recorded drill: same scenario, seed, schedule and planted bug.
    pub fn replay(&self, mode: TraceMode) -> Result<RunReport, registry::UnknownScenario> {
        self.run(self.schedule.clone(), mode)
    }

    /// Runs the recorded drill under `schedule` instead (the shrinker's candidates).
    pub fn run(&self, schedule: FaultSchedule, mode: TraceMode) -> Result<RunReport, registry::UnknownScenario> {
        let scenario = registry::find(&self.scenario)?;
        Ok(run_scenario_with(scenario, self.seed, schedule, self.planted(), mode))
    }
}

/// `cargo run --release … --` in the build that runs `scenario` with `planted`
/// armed: `tch` for a libtorch scenario, `planted-bugs` for a planted bug.
pub fn cargo_run_for(scenario: &str, planted: Planted) -> String {
    cargo_run(registry::cargo_features(scenario), planted)
}

/// The command that reruns a failure file of `scenario` with `planted` armed.
pub fn replay_file_command(path: &Path, scenario: &str, planted: Planted) -> String {
    format!("{} replay {}", cargo_run_for(scenario, planted), path.display())
}
