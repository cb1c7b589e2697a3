//! `run.json`: the manifest of a run directory.
//!
//! The gate must judge exactly what one harness run produced, never a mix of that
//! run and files an earlier run left behind, so the harness names its files here
//! and the gate reads only those. The manifest also says what the run was (profile,
//! device, seed, epochs, commit) so two run directories can be compared knowingly.

use serde::{Deserialize, Serialize};

use super::{HarnessConfig, Rc1Scenario, ScenarioRun};

/// The manifest's file name inside a run directory.
pub const MANIFEST_FILE: &str = "run.json";

/// The schema tag of a manifest.
pub const MANIFEST_SCHEMA: &str = "esper.rc1.run/v1";

/// What a harness run was and which files it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    pub schema: String,
    pub profile: String,
    pub device: String,
    pub seed: u64,
    pub epochs: u32,
    /// `git rev-parse HEAD` where the harness ran, or `unknown`.
    pub commit: String,
    /// Why the commit is `unknown`; absent when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_unknown_because: Option<String>,
    /// The scenarios that ran to the end, each with its metrics file.
    pub scenarios: Vec<ManifestEntry>,
    /// The scenarios that failed and wrote no metrics (RC1 slugs).
    pub failed: Vec<String>,
}

/// One scenario a run produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// RC1 slug (`steady_train`, …).
    pub scenario: String,
    /// Its metrics file, relative to the run directory.
    pub metrics: String,
}

/// The commit a run was built from, as far as the harness could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    Known(String),
    Unknown { because: String },
}

impl RunManifest {
    /// The manifest of `runs` (and of `failed`, which wrote nothing) under `config`.
    pub fn new(config: &HarnessConfig, runs: &[ScenarioRun], failed: &[Rc1Scenario], commit: Commit) -> Self {
        let (commit, commit_unknown_because) = match commit {
            Commit::Known(hash) => (hash, None),
            Commit::Unknown { because } => ("unknown".to_owned(), Some(because)),
        };
        let scenarios = runs
            .iter()
            .map(|run| ManifestEntry {
                scenario: run.metrics.scenario.clone(),
                metrics: metrics_file_name(&run.metrics.scenario),
            })
            .collect();
        Self {
            schema: MANIFEST_SCHEMA.to_owned(),
            profile: config.profile.name().to_owned(),
            device: config.training.device.to_string(),
            seed: config.seed,
            epochs: config.training.epochs,
            commit,
            commit_unknown_because,
            scenarios,
            failed: failed.iter().map(|scenario| scenario.slug().to_owned()).collect(),
        }
    }
}

/// The suffix that marks a metrics file in a run directory.
pub const METRICS_SUFFIX: &str = "_metrics.json";

/// The suffix that marks a telemetry file in a run directory.
pub const TELEMETRY_SUFFIX: &str = "_telemetry.json";

/// `steady_train` → `steady_train_metrics.json`.
pub fn metrics_file_name(slug: &str) -> String {
    format!("{slug}{METRICS_SUFFIX}")
}
