//! Failure files: everything needed to rerun one failed drill, and nothing else.
//!
//! `esper sweep` writes one per failing seed (`failures/<seed>.json`); `esper
//! replay FILE` reruns it exactly, `esper shrink FILE` minimises it, and a file
//! copied into `tests/drills/regressions/` is replayed by a test forever after.
//! The schedule is stored in full rather than re-derived from the seed, so a
//! file stays valid when the generator changes, and a shrunk file can hold a
//! schedule no seed would draw.

use std::path::{Path, PathBuf};

use esper_sim::{FaultSchedule, Invariant, RunReport, TraceMode, run_scenario_with};
use serde::{Deserialize, Serialize};

use super::generate::FaultKind;
use crate::registry;

/// The file format's name and version.
pub const FAILURE_SCHEMA: &str = "esper.drill.failure/v1";

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
    /// The faults.
    pub schedule: FaultSchedule,
    /// The first invariant the run broke.
    pub invariant: Invariant,
    /// The run's error.
    pub error: String,
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
}

impl FailureRecord {
    /// The record of a failed run; `None` if it passed.
    pub fn from_report(report: &RunReport, swarm: bool, kinds: Vec<FaultKind>) -> Option<Self> {
        let invariant = Invariant::of(&report.outcome)?;
        let error = match &report.outcome {
            esper_sim::Outcome::Failed { error } => error.clone(),
            esper_sim::Outcome::Passed => return None,
        };
        Some(Self {
            schema: FAILURE_SCHEMA.to_owned(),
            scenario: report.scenario.clone(),
            seed: report.seed,
            swarm,
            kinds,
            schedule: report.schedule.clone(),
            invariant,
            error,
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

    /// Reruns the recorded drill: same scenario, seed and schedule.
    pub fn replay(&self, mode: TraceMode) -> Result<RunReport, registry::UnknownScenario> {
        let scenario = registry::find(&self.scenario)?;
        Ok(run_scenario_with(scenario, self.seed, self.schedule.clone(), mode))
    }
}

/// The command that reruns a failure file.
pub fn replay_file_command(path: &Path) -> String {
    format!("cargo run --release -- replay {}", path.display())
}
