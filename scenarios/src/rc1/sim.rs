//! The RC1 training workloads as sim scenarios: one world with the simulated Redis and
//! a `tolaria` host running the workload, so a run has a trace hash and replays.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use esper_core::leyline::{EmergencyLevel, SigningKey, TELEMETRY_BYTE_LIMIT};
use esper_core::tolaria::CHECKPOINT_PATH;
use esper_core::tolaria::device::DeviceKind;
use esper_sim::redis::ServerConfig;
use esper_sim::{
    RngTree, RunReport, SimDiskConfig, SimScenario, TraceMode, TurmoilConnector, World, WorldConfig, run_scenario,
};
use prost::Message;

use super::training::{self, BusAddress, TamiyoStalls, TrainingOutcome, TrainingParams, TrainingWorkload};
use crate::sim::control_loop::{SIM_BUS_SECRET, read_emergency_stream, sim_clock};

const REDIS: &str = "redis";
const REDIS_PORT: u16 = 6_379;
const TOLARIA: &str = "tolaria";

/// The sim's cost model for one optimizer step of the RC1 model: RC1's CPU baseline
/// epoch (4.35 ms over 16 steps) per step, so modelled epochs read like real ones.
/// Modelled time is reported as such and never judged against a baseline.
pub const SIM_STEP_COST: Duration = Duration::from_micros(270);

/// A training workload in the sim. Registry instances have no sink; the harness makes
/// its own with one, to take the measurements out of the world.
#[derive(Debug)]
pub struct TrainingScenario {
    name: &'static str,
    summary: &'static str,
    workload: TrainingWorkload,
    params: TrainingParams,
    sink: Option<Arc<Mutex<Option<TrainingOutcome>>>>,
}

impl TrainingScenario {
    /// The workload at RC1's defaults, under its registry name.
    pub const fn rc1(workload: TrainingWorkload) -> Self {
        let (name, summary) = match workload {
            TrainingWorkload::SteadyTrain => {
                ("rc1-steady-train", "RC1 steady-train: 3 epochs of the linear model, telemetry on the Oona bus")
            }
            TrainingWorkload::Rollback => (
                "rc1-rollback",
                "RC1 rollback: Kasmina never answers, the failed epoch's checkpoint restore misses its 5 ms deadline, L4 halt",
            ),
            TrainingWorkload::TamiyoTimeout => {
                ("rc1-tamiyo-timeout", "RC1 tamiyo-timeout: Tamiyo stalls in every 2nd epoch; conservative mode")
            }
        };
        Self { name, summary, workload, params: sim_defaults(), sink: None }
    }
}

/// RC1's workload with the sim's cost model.
pub const fn sim_defaults() -> TrainingParams {
    TrainingParams {
        device: DeviceKind::Synthetic,
        epochs: 3,
        batch_size: 4,
        step_timeout: Duration::from_millis(50),
        rollback_deadline: Duration::from_millis(5),
        checkpoint_read_latency: Duration::from_millis(12),
        tamiyo_stalls: TamiyoStalls::EveryNthEpoch(2),
        step_cost: SIM_STEP_COST,
    }
}

/// Runs `workload` with `params` in the sim at `seed`: the outcome and the run's report.
pub fn run(
    workload: TrainingWorkload,
    params: TrainingParams,
    seed: u64,
) -> Result<(TrainingOutcome, RunReport), String> {
    let sink = Arc::new(Mutex::new(None));
    let scenario = TrainingScenario { sink: Some(Arc::clone(&sink)), params, ..TrainingScenario::rc1(workload) };
    let report = run_scenario(&scenario, seed, TraceMode::Hash);
    if !report.passed() {
        return Err(report.to_string());
    }
    let outcome = sink.lock().unwrap_or_else(PoisonError::into_inner).take();
    outcome.map(|outcome| (outcome, report)).ok_or_else(|| format!("{} passed without measuring", scenario.name))
}

impl SimScenario for TrainingScenario {
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> &'static str {
        self.summary
    }

    fn world_config(&self) -> WorldConfig {
        WorldConfig { max_latency: Duration::from_millis(2), ..WorldConfig::default() }
    }

    fn populate(&self, world: &mut World) {
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        let disk = world.disk(TOLARIA, SimDiskConfig::default());
        let rng = world.rng().child(TOLARIA);
        let (workload, params, sink) = (self.workload, self.params.clone(), self.sink.clone());
        world.client(TOLARIA, async move {
            let key = SigningKey::new(SIM_BUS_SECRET.to_vec()).map_err(|e| e.to_string())?;
            let bus = BusAddress { connector: TurmoilConnector, host: REDIS.to_owned(), port: REDIS_PORT, key };
            let path = std::path::Path::new(CHECKPOINT_PATH);
            let outcome = training::run(workload, &params, &bus, (disk, path), sim_clock(), &rng).await?;
            check(workload, &outcome)?;
            if workload == TrainingWorkload::Rollback {
                check_halt_signal(&rng).await?;
            }
            if let Some(sink) = sink {
                *sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
            }
            Ok(())
        });
    }
}

/// What each workload must show, whatever the seed.
fn check(workload: TrainingWorkload, outcome: &TrainingOutcome) -> Result<(), String> {
    let counter = |name: &str| outcome.counters.get(name).copied().unwrap_or(0.0);
    let result = |name: &str| outcome.results.get(name).copied().unwrap_or(f64::NAN);
    if let Some(packet) = outcome.telemetry.iter().find(|p| p.encoded_len() > TELEMETRY_BYTE_LIMIT) {
        return Err(format!("telemetry packet {} is {} bytes", packet.packet_id, packet.encoded_len()));
    }
    match workload {
        TrainingWorkload::SteadyTrain => {
            let losses: Vec<f32> = outcome.reports.iter().map(|r| r.loss).collect();
            if outcome.reports.iter().any(|r| r.failure.is_some()) || counter("tolaria.timeout.tamiyo_total") > 0.0 {
                return Err(format!("steady-train must run clean: {:?}", outcome.counters));
            }
            let fell = matches!((losses.first(), losses.last()), (Some(first), Some(last)) if last < first);
            if losses.len() > 1 && !fell {
                return Err(format!("loss did not fall: {losses:?}"));
            }
        }
        TrainingWorkload::Rollback => {
            let steps = outcome.reports.iter().map(|r| r.steps).sum::<u64>() as f64;
            let expected = [
                ("tolaria.timeout.kasmina_total", steps),
                ("tolaria.rollback.deadline_exceeded_total", 1.0),
                ("tolaria.emergency.halts_total", 1.0),
            ];
            if expected.iter().any(|&(name, value)| counter(name) != value) || result("halted") != 1.0 {
                return Err(format!("expected {expected:?} and a halt: {:?}", outcome.counters));
            }
        }
        TrainingWorkload::TamiyoTimeout => {
            let (timeouts, stalls) = (counter("tolaria.timeout.tamiyo_total"), result("tamiyo_stalls"));
            if timeouts != stalls {
                return Err(format!("{stalls} Tamiyo stalls but {timeouts} timeouts counted"));
            }
        }
    }
    Ok(())
}

async fn check_halt_signal(rng: &RngTree) -> Result<(), String> {
    let signals = read_emergency_stream(rng).await?;
    let halt = signals.iter().find(|s| s.level == i32::from(EmergencyLevel::Halt));
    match halt {
        Some(signal) if signal.reason == "rollback_deadline" => Ok(()),
        _ => Err(format!("no rollback_deadline halt on the emergency stream: {signals:?}")),
    }
}
