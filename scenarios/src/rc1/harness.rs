//! `esper harness`: every RC1 scenario asked for, run in turn under one
//! configuration, then the run directory written (metrics, manifest, environment,
//! report) and the tables summarised. Progress goes to stderr as each scenario
//! starts and ends; a scenario that fails is named and the rest still run.

use std::fmt;
use std::path::{Path, PathBuf};

use super::env::Environment;
use super::manifest::{Commit, RunManifest};
use super::metrics::ScenarioMetrics;
use super::output::{RunDirError, counter_table, latency_table, write_run};
use super::{HarnessConfig, Profile, Rc1Scenario, ScenarioRun, run_scenario};
use crate::real::real_profile::wall_clock_ms;

/// What a harness run did.
#[derive(Debug)]
pub struct HarnessOutcome {
    /// The metrics of each scenario that ran, in run order.
    pub metrics: Vec<ScenarioMetrics>,
    /// The scenarios that failed (and wrote nothing).
    pub failed: Vec<Rc1Scenario>,
    /// The run directory, and every file written.
    pub output_dir: PathBuf,
    pub written: Vec<PathBuf>,
    /// Where the report went.
    pub report: PathBuf,
    /// Why the manifest records the commit as unknown, if it does.
    pub commit_unknown_because: Option<String>,
}

impl HarnessOutcome {
    /// Every scenario ran and wrote its metrics.
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }
}

/// The tables, each sim run's trace hash, what was written and what failed.
impl fmt::Display for HarnessOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", latency_table(&self.metrics))?;
        writeln!(f, "{}", counter_table(&self.metrics))?;
        for run in &self.metrics {
            if let Some(hash) = &run.trace_hash {
                writeln!(f, "{} seed {}: trace hash {hash}", run.scenario, run.seed)?;
            }
        }
        let (files, dir, report) = (self.written.len(), self.output_dir.display(), self.report.display());
        write!(f, "wrote {files} files to {dir} (report: {report})")?;
        if !self.failed.is_empty() {
            let names: Vec<&str> = self.failed.iter().map(|scenario| scenario.cli_name()).collect();
            write!(f, "\nfailed: {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// Runs `scenarios` under `config` and writes the run directory (the report to
/// `report`), recording the checkout's commit in the manifest.
pub fn run_harness(
    config: &HarnessConfig,
    scenarios: &[Rc1Scenario],
    report: &Path,
) -> Result<HarnessOutcome, RunDirError> {
    let started_ms = wall_clock_ms();
    let (mut runs, mut failed) = (Vec::<ScenarioRun>::new(), Vec::new());
    for (index, scenario) in scenarios.iter().enumerate() {
        let step = format!("[{}/{}] {scenario}", index + 1, scenarios.len());
        #[allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "progress output reports wall time")]
        let clock = std::time::Instant::now();
        let (profile, device) = (config.profile.name(), &config.training.device);
        eprintln!("{step}: profile {profile}, device {device}, seed {} …", config.seed);
        match run_scenario(*scenario, config) {
            Ok(run) => {
                eprintln!("{step}: done in {:.2?}", clock.elapsed());
                runs.push(run);
            }
            Err(error) => {
                eprintln!("{step} FAILED: {error}");
                failed.push(*scenario);
            }
        }
    }
    let env = environment(config, started_ms);
    let manifest = RunManifest::new(config, &runs, &failed, current_commit());
    let written = write_run(&config.output_dir, &runs, &manifest, &env, report)?;
    let metrics = runs.into_iter().map(|run| run.metrics).collect();
    let commit_unknown_because = manifest.commit_unknown_because;
    let (output_dir, report) = (config.output_dir.clone(), report.to_path_buf());
    Ok(HarnessOutcome { metrics, failed, output_dir, written, report, commit_unknown_because })
}

/// The machine and settings the run had, for `env.json`.
fn environment(config: &HarnessConfig, started_ms: u64) -> Environment {
    let redis = match config.profile {
        Profile::Sim => "simulated (in the sim world)".to_owned(),
        Profile::Real => config.redis.describe(),
    };
    let key_source = config.key.as_ref().map_or("simulated (the sim's fixed key)", |key| key.source.name());
    let device = config.training.device.to_string();
    Environment::capture(config.profile.name(), &device, redis, key_source.to_owned(), started_ms)
}

/// The commit being run, from `git rev-parse HEAD` in the working directory.
fn current_commit() -> Commit {
    let output = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output();
    match output {
        Ok(output) if output.status.success() => {
            Commit::Known(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        }
        Ok(output) => Commit::Unknown {
            because: format!("git rev-parse HEAD: {}", String::from_utf8_lossy(&output.stderr).trim()),
        },
        Err(error) => Commit::Unknown { because: format!("git could not be run: {error}") },
    }
}
