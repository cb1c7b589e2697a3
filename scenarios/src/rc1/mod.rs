//! The RC1 harness: Esper-Lite's release-candidate workloads, run in the sim or for
//! real, written as metrics files, summarised, reported and gated against the RC1
//! baselines.
//!
//! [`harness`] runs them and writes the run directory. [`training`] holds the three
//! training workloads and [`stalls`] the faults they inject, [`prefetch`] Kasmina's
//! prefetch burst; [`sim`] and [`real`] run them under each profile; [`metrics`] is the
//! metrics-file schema, [`manifest`] a run directory's `run.json`, [`output`] writes a
//! run directory, [`gate`] judges one.

pub mod env;
pub mod gate;
pub mod harness;
pub mod manifest;
pub mod metrics;
pub mod output;
pub mod plot;
pub mod prefetch;
pub mod real;
pub mod sim;
pub mod stalls;
pub mod training;

pub use harness::{HarnessOutcome, run_harness};

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use esper_core::leyline::TelemetryPacket;

use crate::sim::kasmina_prefetch::BurstConfig;
use esper_core::tolaria::device::DeviceKind;

use crate::real::real_profile::{RealKey, RedisTarget};
use metrics::{SCHEMA, ScenarioMetrics, Timing};
use training::{TrainingOutcome, TrainingParams, TrainingWorkload};

/// The RC1 scenarios, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rc1Scenario {
    SteadyTrain,
    Rollback,
    TamiyoTimeout,
    KasminaPrefetch,
}

impl Rc1Scenario {
    pub const ALL: [Self; 4] = [Self::SteadyTrain, Self::Rollback, Self::TamiyoTimeout, Self::KasminaPrefetch];

    /// The name on the command line.
    pub fn cli_name(self) -> &'static str {
        match self {
            Self::SteadyTrain => "steady-train",
            Self::Rollback => "rollback",
            Self::TamiyoTimeout => "tamiyo-timeout",
            Self::KasminaPrefetch => "kasmina-prefetch",
        }
    }

    /// RC1's slug, used in file names and metrics (`steady_train`, …).
    pub fn slug(self) -> &'static str {
        match self {
            Self::SteadyTrain => "steady_train",
            Self::Rollback => "rollback_deadline",
            Self::TamiyoTimeout => "tamiyo_timeout",
            Self::KasminaPrefetch => "kasmina_prefetch_burst",
        }
    }

    /// The training workload this scenario is, if it is one.
    fn workload(self) -> Option<TrainingWorkload> {
        match self {
            Self::SteadyTrain => Some(TrainingWorkload::SteadyTrain),
            Self::Rollback => Some(TrainingWorkload::Rollback),
            Self::TamiyoTimeout => Some(TrainingWorkload::TamiyoTimeout),
            Self::KasminaPrefetch => None,
        }
    }
}

impl FromStr for Rc1Scenario {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.cli_name() == text).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|s| s.cli_name()).collect();
            format!("unknown RC1 scenario {text:?}; expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Rc1Scenario {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.cli_name())
    }
}

/// Sim or real (`esper harness --profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Sim,
    Real,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Real => "real",
        }
    }
}

/// Everything `esper harness` was asked to do.
#[derive(Debug, Clone)]
pub struct HarnessConfig {
    pub profile: Profile,
    pub seed: u64,
    pub training: TrainingParams,
    /// The kasmina-prefetch burst (its seed is the run's).
    pub prefetch: BurstConfig,
    pub redis: RedisTarget,
    /// The real profile's Leyline key (`ESPER_LEYLINE_SECRET` or a dev key); the
    /// sim signs with its own fixed key and needs none.
    pub key: Option<RealKey>,
    pub output_dir: PathBuf,
}

impl HarnessConfig {
    /// The key a real-profile scenario signs with.
    pub(crate) fn real_key(&self) -> Result<&esper_core::leyline::SigningKey, String> {
        self.key.as_ref().map(|key| &key.key).ok_or_else(|| "the real profile needs a Leyline key".to_owned())
    }
}

/// One scenario's run: its metrics file, and the telemetry behind it.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    pub metrics: ScenarioMetrics,
    pub telemetry: Vec<TelemetryPacket>,
}

/// Runs `scenario` under `config`.
pub fn run_scenario(scenario: Rc1Scenario, config: &HarnessConfig) -> Result<ScenarioRun, String> {
    let Some(workload) = scenario.workload() else {
        return prefetch::run(config);
    };
    let (outcome, trace_hash) = match config.profile {
        Profile::Sim => {
            if config.training.device != DeviceKind::Synthetic && !cfg!(feature = "tch") {
                return Err(format!("device {} needs a build with --features tch", config.training.device));
            }
            let (outcome, report) = sim::run(workload, config.training.clone(), config.seed)?;
            (outcome, Some(report.hash))
        }
        Profile::Real => {
            let workdir = config.output_dir.join(".work");
            let outcome =
                real::run(workload, &config.training, config.seed, (&config.redis, config.real_key()?), &workdir);
            // The checkpoints are scratch; a failure to tidy them is not the run's failure.
            let _ = std::fs::remove_dir_all(&workdir);
            (outcome?, None)
        }
    };
    Ok(ScenarioRun { metrics: training_metrics(scenario, config, &outcome, trace_hash), telemetry: outcome.telemetry })
}

fn training_metrics(
    scenario: Rc1Scenario,
    config: &HarnessConfig,
    outcome: &TrainingOutcome,
    trace_hash: Option<String>,
) -> ScenarioMetrics {
    let p = &config.training;
    let mut parameters = BTreeMap::from([
        ("batch_size".to_owned(), p.batch_size.to_string()),
        ("step_timeout_ms".to_owned(), p.step_timeout.as_millis().to_string()),
    ]);
    match scenario {
        Rc1Scenario::Rollback => {
            parameters.insert("deadline_ms".to_owned(), p.rollback_deadline.as_millis().to_string());
            parameters.insert("checkpoint_read_ms".to_owned(), p.checkpoint_read_latency.as_millis().to_string());
        }
        Rc1Scenario::TamiyoTimeout => {
            let stalls = match p.tamiyo_stalls {
                training::TamiyoStalls::EveryNthEpoch(n) => ("timeout_every", n.to_string()),
                training::TamiyoStalls::Ratio(r) => ("tamiyo_timeout_ratio", r.to_string()),
            };
            parameters.insert(stalls.0.to_owned(), stalls.1);
        }
        Rc1Scenario::SteadyTrain | Rc1Scenario::KasminaPrefetch => {}
    }
    if config.profile == Profile::Sim {
        parameters.insert("step_cost_us".to_owned(), p.step_cost.as_micros().to_string());
    } else {
        parameters.insert("redis".to_owned(), config.redis.describe());
    }
    ScenarioMetrics {
        schema: SCHEMA.to_owned(),
        scenario: scenario.slug().to_owned(),
        profile: config.profile.name().to_owned(),
        device: p.device.to_string(),
        seed: config.seed,
        epochs: outcome.reports.len() as u32,
        timing: if config.profile == Profile::Sim { Timing::Modelled } else { Timing::Wall },
        parameters,
        kpis: outcome.kpis.clone(),
        counters: outcome.counters.clone(),
        events: outcome.events.clone(),
        results: outcome.results.clone(),
        trace_hash,
    }
}
