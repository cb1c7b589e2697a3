//! The three RC1 training workloads — steady-train, rollback, tamiyo-timeout — on the
//! real Tolaria, Tamiyo and Kasmina, with telemetry and emergency signals on the
//! Oona bus. Written once against the `Connector` and `Storage` seams, so the sim
//! and the real profile run exactly this code.
//!
//! The RC1 workload (../shared/reference/rc1-harness.md): a linear 4 → 2 classifier,
//! SGD, 64 seeded samples, batch 4 (16 steps an epoch), 3 epochs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{SigningKey, TelemetryPacket, VerifyPolicy};
use esper_core::net::Connector;
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_core::storage::Storage;
use esper_core::tamiyo::{BlueprintCatalog, MemoryFieldReportSink, TamiyoConfig, TamiyoService};
use esper_core::tolaria::device::{Dataset, DeviceKind, ModelSpec};
use esper_core::tolaria::{
    Checkpoint, CheckpointStore, Collaborators, EpochReport, StorageCheckpoints, Trainer, TrainingLoopConfig,
};
use esper_sim::RngTree;
use rand_chacha::ChaCha8Rng;

use super::metrics::LatencySummary;
use super::stalls::{SlowCheckpoints, StallPlan, Stalling};

/// Which training workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingWorkload {
    /// Undisturbed training.
    SteadyTrain,
    /// Kasmina never answers; the failed epoch rolls back from a checkpoint that
    /// arrives after the rollback deadline; emergency escalates to an L4 halt.
    Rollback,
    /// Tamiyo stops answering on a plan.
    TamiyoTimeout,
}

/// When Tamiyo stalls in the tamiyo-timeout workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TamiyoStalls {
    /// The first call of every Nth epoch (RC1's `--timeout-every N`; RC1's stub Tamiyo
    /// answered per epoch, so its "every Nth evaluation" is every Nth epoch here).
    EveryNthEpoch(u32),
    /// Each call with this probability (`--tamiyo-timeout-ratio`), from the seed.
    Ratio(f64),
}

/// The knobs of a training workload.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingParams {
    pub device: DeviceKind,
    pub epochs: u32,
    pub batch_size: usize,
    /// How long Tolaria waits for Tamiyo and for Kasmina.
    pub step_timeout: Duration,
    /// The rollback workload's restore deadline (RC1's `--deadline-ms 5`; `esper harness --deadline 5ms`).
    pub rollback_deadline: Duration,
    /// How long a checkpoint read takes in the rollback workload (RC1's restore: 12 ms).
    pub checkpoint_read_latency: Duration,
    pub tamiyo_stalls: TamiyoStalls,
    /// Virtual time per optimizer step in the sim; zero in the real profile.
    pub step_cost: Duration,
}

/// Where the bus is and how to sign for it.
#[derive(Debug, Clone)]
pub struct BusAddress<C> {
    pub connector: C,
    pub host: String,
    pub port: u16,
    pub key: SigningKey,
}

/// What a training workload measured.
#[derive(Debug, Clone)]
pub struct TrainingOutcome {
    pub reports: Vec<EpochReport>,
    pub counters: BTreeMap<String, f64>,
    pub events: BTreeMap<String, u64>,
    pub results: BTreeMap<String, f64>,
    pub kpis: BTreeMap<String, LatencySummary>,
    /// Every telemetry packet Tolaria published, in order.
    pub telemetry: Vec<TelemetryPacket>,
}

/// The trainer as the workloads assemble it.
type Rc1Trainer<C, S> = Trainer<(
    Stalling<TamiyoService<BlueprintCatalog, MemoryFieldReportSink>>,
    Stalling<SeedManager>,
    OonaClient<C, ChaCha8Rng>,
    OonaClient<C, ChaCha8Rng>,
    SlowCheckpoints<StorageCheckpoints<S>>,
)>;

/// Runs `workload` to completion (or to an L4 halt) and measures it.
pub async fn run<C, S>(
    workload: TrainingWorkload,
    params: &TrainingParams,
    bus: &BusAddress<C>,
    (storage, checkpoint_path): (S, &Path),
    clock: UnixClock,
    rng: &RngTree,
) -> Result<TrainingOutcome, String>
where
    C: Connector + Clone,
    S: Storage,
{
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut rng.stream("dataset"));
    let model = params.device.build(spec, &mut rng.stream("model")).map_err(|e| e.to_string())?;
    let initial = model.snapshot().map_err(|e| e.to_string())?;
    let tamiyo_plan = match (workload, params.tamiyo_stalls) {
        (TrainingWorkload::TamiyoTimeout, TamiyoStalls::Ratio(ratio)) => {
            StallPlan::Ratio { ratio, rng: Box::new(rng.stream("tamiyo_stalls")) }
        }
        (TrainingWorkload::TamiyoTimeout, TamiyoStalls::EveryNthEpoch(n)) => StallPlan::FirstCallOfEveryNthEpoch(n),
        _ => StallPlan::Never,
    };
    let kasmina_plan = if workload == TrainingWorkload::Rollback { StallPlan::Always } else { StallPlan::Never };
    let tamiyo = TamiyoService::new(
        TamiyoConfig::default(),
        BlueprintCatalog::karn(),
        MemoryFieldReportSink::new(1_024),
        move || clock.now_ms(),
        rng.stream("tamiyo_ids"),
    );
    let peers = Collaborators {
        tamiyo: Stalling::new(tamiyo, tamiyo_plan),
        kasmina: Stalling::new(SeedManager::new(KasminaConfig::default()), kasmina_plan),
        telemetry: oona(bus, clock, rng, "telemetry"),
        emergency: oona(bus, clock, rng, "emergency"),
    };
    let mut checkpoints = StorageCheckpoints::new(storage, checkpoint_path);
    let read_latency = match workload {
        TrainingWorkload::Rollback => {
            // The state the failed epoch rolls back to: the run's starting checkpoint.
            let start = Checkpoint { epoch: 0, global_step: 0, model: initial, kasmina: Vec::new() };
            checkpoints.save(&start).await.map_err(|e| e.to_string())?;
            params.checkpoint_read_latency
        }
        _ => Duration::ZERO,
    };
    let store = SlowCheckpoints { inner: checkpoints, read_latency };
    let mut trainer: Rc1Trainer<C, S> =
        Trainer::new(config(workload, params), model, dataset, peers, store, clock).map_err(|e| e.to_string())?;
    let epochs = if workload == TrainingWorkload::Rollback { 1 } else { params.epochs };
    let reports = trainer.run(epochs).await.map_err(|e| e.to_string())?;
    Ok(measure(&trainer, reports))
}

fn config(workload: TrainingWorkload, params: &TrainingParams) -> TrainingLoopConfig {
    let base = TrainingLoopConfig {
        run_id: format!("rc1-{workload:?}").to_ascii_lowercase(),
        batch_size: params.batch_size,
        step_timeout: params.step_timeout,
        step_cost: params.step_cost,
        ..TrainingLoopConfig::default()
    };
    match workload {
        TrainingWorkload::Rollback => TrainingLoopConfig {
            emergency_enabled: true,
            l4_on_rollback_deadline: true,
            rollback_enabled: true,
            // No fast tier: the rollback has to come from the checkpoint.
            rollback_fast_cap_bytes: 0,
            rollback_deadline: params.rollback_deadline,
            ..base
        },
        _ => base,
    }
}

fn oona<C: Connector + Clone>(
    bus: &BusAddress<C>,
    clock: UnixClock,
    rng: &RngTree,
    role: &str,
) -> OonaClient<C, ChaCha8Rng> {
    let parts = ClientParts { key: bus.key.clone(), verify: VerifyPolicy::default(), clock, rng: rng.stream(role) };
    let config = StreamConfig { consumer: format!("tolaria-{role}"), ..StreamConfig::default() };
    OonaClient::new(bus.connector.clone(), &bus.host, bus.port, config, parts)
}

/// Reads the workload's figures off the trainer and its collaborators.
fn measure<C: Connector, S: Storage>(trainer: &Rc1Trainer<C, S>, reports: Vec<EpochReport>) -> TrainingOutcome {
    let peers = trainer.collaborators();
    let mut counters: BTreeMap<String, f64> =
        trainer.counters().named().into_iter().map(|(name, value)| (name.to_owned(), value as f64)).collect();
    for (name, value) in peers.telemetry.metrics_snapshot().named() {
        counters.insert(name.to_owned(), value as f64);
    }
    let telemetry: Vec<TelemetryPacket> = reports.iter().flat_map(|r| r.telemetry.iter().cloned()).collect();
    let mut events = BTreeMap::new();
    for event in telemetry.iter().flat_map(|packet| &packet.events) {
        *events.entry(event.description.clone()).or_insert(0) += 1;
    }
    let mut kpis = BTreeMap::new();
    let latencies = reports.iter().map(|r| r.latency_ms).collect();
    kpis.extend(LatencySummary::of_ms(latencies).map(|s| ("tolaria.training.latency_ms".to_owned(), s)));
    let c = trainer.counters();
    if c.rollback_fast_hits_total + c.rollback_fast_misses_total > 0 {
        let restore = LatencySummary::of_ms(vec![trainer.last_restore_latency_ms()]);
        kpis.extend(restore.map(|s| ("tolaria.rollback.restore_latency_ms".to_owned(), s)));
    }
    let last = reports.last();
    let results = BTreeMap::from([
        ("epochs_run".to_owned(), reports.len() as f64),
        ("loss_final".to_owned(), last.map_or(f64::NAN, |r| f64::from(r.loss))),
        ("accuracy_final".to_owned(), last.map_or(f64::NAN, |r| f64::from(r.accuracy))),
        ("halted".to_owned(), if last.is_some_and(|r| r.halted) { 1.0 } else { 0.0 }),
        ("tamiyo_calls".to_owned(), peers.tamiyo.calls as f64),
        ("tamiyo_stalls".to_owned(), peers.tamiyo.stalls as f64),
        ("tamiyo_epochs_consulted".to_owned(), peers.tamiyo.epochs_called as f64),
        ("kasmina_calls".to_owned(), peers.kasmina.calls as f64),
    ]);
    TrainingOutcome { reports, counters, events, results, kpis, telemetry }
}
