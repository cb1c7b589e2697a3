//! `control-loop`: Tolaria trains while Tamiyo decides over the simulated network.
//!
//! The `tamiyo` host serves the real `TamiyoService` over signed Leyline RPC; the
//! `tolaria` client runs the real `Trainer` on a device (synthetic by default, libtorch
//! CPU for `control-loop-tch`), with Kasmina's `SeedManager` applying the commands.
//! Partway through, the link between them is cut for longer than Tolaria's step
//! timeout and then repaired (times drawn from the seed). The client then checks:
//! every epoch ran, the loss fell, every telemetry packet fit 280 bytes, the cut was
//! felt (a Tamiyo timeout or error, conservative mode), and after the repair Tamiyo
//! was consulted again.

mod crash;
pub(crate) mod hosts;
mod rollback;

pub use crash::TolariaCrashScenario;
pub(crate) use hosts::sim_clock;
pub use rollback::RollbackDeadlineScenario;
pub(crate) use rollback::{REDIS, REDIS_PORT, SIM_BUS_SECRET, bus, read_emergency_stream};

use std::time::Duration;

use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{TELEMETRY_BYTE_LIMIT, TelemetryPacket};
use esper_core::tolaria::device::{Dataset, DeviceKind, ModelSpec};
use esper_core::tolaria::metrics::TolariaCounters;
use esper_core::tolaria::ports::Outbox;
use esper_core::tolaria::{CHECKPOINT_PATH, Collaborators, EpochReport, StorageCheckpoints, Trainer};
use esper_sim::{
    Fault, FaultSchedule, RngTree, ScheduledFault, SimDisk, SimDiskConfig, SimScenario, World, WorldConfig,
};
use hosts::{SIM_EPOCH_MS, TAMIYO, TOLARIA, durable_field_reports, tamiyo_client, tamiyo_host, training_config};
use prost::Message;
use rand::Rng;

/// Epochs at least; the run goes on until two epochs have started after the repair.
const MIN_EPOCHS: usize = 3;
/// Epochs at most, so a scenario bug cannot spin forever.
const MAX_EPOCHS: usize = 40;

/// The scenario, on one device kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLoopScenario {
    device: DeviceKind,
}

impl ControlLoopScenario {
    /// On the pure-Rust synthetic device.
    pub const fn synthetic() -> Self {
        Self { device: DeviceKind::Synthetic }
    }

    /// On libtorch CPU (needs the `tch` feature at run time).
    pub const fn tch_cpu() -> Self {
        Self { device: DeviceKind::Cpu }
    }
}

impl SimScenario for ControlLoopScenario {
    fn name(&self) -> &'static str {
        match self.device {
            DeviceKind::Synthetic => "control-loop",
            _ => "control-loop-tch",
        }
    }

    fn summary(&self) -> &'static str {
        match self.device {
            DeviceKind::Synthetic => {
                "Tolaria trains, Tamiyo decides over signed RPC, Kasmina applies; the link is cut once"
            }
            _ => "control-loop on libtorch CPU (`tch` builds only)",
        }
    }

    fn world_config(&self) -> WorldConfig {
        // A LAN between trainer and policy: 1–2 ms one way.
        WorldConfig { max_latency: Duration::from_millis(2), ..WorldConfig::default() }
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("partition");
        let start_ms = draws.random_range(30..150);
        let end_ms = start_ms + draws.random_range(600..900);
        let fault = |at_ms, repair: bool| {
            let (a, b) = (TOLARIA.to_owned(), TAMIYO.to_owned());
            ScheduledFault { at_ms, fault: if repair { Fault::Repair { a, b } } else { Fault::Partition { a, b } } }
        };
        FaultSchedule::new(vec![fault(start_ms, false), fault(end_ms, true)])
    }

    fn populate(&self, world: &mut World) {
        let tamiyo_disk = tamiyo_host(world);
        let device = self.device;
        let rng = world.rng().child("tolaria");
        let repair_ms = repair_time(world.schedule());
        let disk = world.disk(TOLARIA, SimDiskConfig::default());
        world
            .client(TOLARIA, async move { train(device, rng, repair_ms, disk, tamiyo_disk).await.map_err(Into::into) });
    }
}

/// When the link comes back, in sim milliseconds.
fn repair_time(schedule: &FaultSchedule) -> u64 {
    schedule.faults().iter().find(|f| f.fault.kind() == "repair").map_or(0, |f| f.at_ms)
}

async fn train(
    device: DeviceKind,
    rng: RngTree,
    repair_ms: u64,
    disk: SimDisk,
    tamiyo_disk: SimDisk,
) -> Result<(), String> {
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut rng.stream("dataset"));
    let model = device.build(spec, &mut rng.stream("model")).map_err(|e| e.to_string())?;
    let clock = sim_clock();
    let peers = Collaborators {
        tamiyo: tamiyo_client(clock, &rng)?,
        kasmina: SeedManager::new(KasminaConfig::default()),
        telemetry: Outbox::default(),
        emergency: Outbox::default(),
    };
    let config = training_config("sim-control-loop");
    let mut trainer =
        Trainer::new(config, model, dataset, peers, StorageCheckpoints::new(disk, CHECKPOINT_PATH), clock)
            .map_err(|e| e.to_string())?;
    let mut reports = Vec::new();
    let mut evaluations = Vec::new();
    let mut epochs_after_repair = 0;
    while reports.len() < MIN_EPOCHS || (epochs_after_repair < 2 && reports.len() < MAX_EPOCHS) {
        if clock.now_ms() - SIM_EPOCH_MS >= repair_ms {
            epochs_after_repair += 1;
        }
        reports.push(trainer.run_epoch().await.map_err(|e| e.to_string())?);
        evaluations.push(trainer.counters().tamiyo_evaluations_total);
    }
    check(&reports, &evaluations, &trainer.collaborators().telemetry.telemetry, trainer.counters())?;
    let durable = durable_field_reports(&tamiyo_disk).await?;
    let answered = trainer.counters().tamiyo_evaluations_total;
    if (durable as u64) < answered {
        return Err(format!("Tamiyo answered {answered} times but only {durable} field reports are durable"));
    }
    Ok(())
}

/// Safety first (budget, the cut was felt), then progress (loss), then liveness.
fn check(
    reports: &[EpochReport],
    evaluations: &[u64],
    telemetry: &[TelemetryPacket],
    counters: TolariaCounters,
) -> Result<(), String> {
    if let Some(packet) = telemetry.iter().find(|p| p.encoded_len() > TELEMETRY_BYTE_LIMIT) {
        return Err(format!("telemetry packet {} is {} bytes", packet.packet_id, packet.encoded_len()));
    }
    if counters.timeout_tamiyo_total + counters.hook_errors_total == 0 {
        return Err(format!("the Tamiyo link was cut but Tolaria never noticed: {counters:?}"));
    }
    if !reports.iter().any(|r| r.failure.is_some()) {
        return Err("a Tamiyo outage longer than the step timeout must fail an epoch".to_owned());
    }
    let (first, last) = (reports.first().map(|r| r.loss), reports.last().map(|r| r.loss));
    match (first, last) {
        (Some(first), Some(last)) if last < first => {}
        _ => return Err(format!("loss did not fall: {:?}", reports.iter().map(|r| r.loss).collect::<Vec<_>>())),
    }
    let consulted_last_epoch = matches!(evaluations, [.., before, after] if after > before);
    if !consulted_last_epoch {
        return Err(format!("liveness: Tamiyo was not consulted in the last epoch after the repair: {evaluations:?}"));
    }
    Ok(())
}
