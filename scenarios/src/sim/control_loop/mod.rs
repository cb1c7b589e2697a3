//! `control-loop`: Tolaria trains while Tamiyo decides over the simulated network.
//!
//! The `tamiyo` host serves the real `TamiyoService` over signed RPC; the
//! `tolaria` client runs the real `Trainer` on a device (synthetic by default, libtorch
//! CPU for `control-loop-tch` and `morphogenesis-tch`), with Kasmina's `SeedManager` applying the commands
//! and failed epochs rolled back. Its own schedule cuts the link between them for
//! longer than Tolaria's step timeout and then repairs it (times drawn from the
//! seed); as a drill (`esper sweep`) it runs under schedules generated from its
//! [`FaultSpace`] instead: partitions, holds, loss and latency on the link, Tamiyo
//! crashing (tearing its WAL) or stalling, Tamiyo's disk failing or filling up,
//! either clock jumping, Tolaria's device slowing down.
//!
//! Tolaria publishes its telemetry through Oona into the world's simulated Redis.
//! Training goes on until an epoch after the last fault consulted Tamiyo and
//! succeeded (liveness, within a bound), then the client judges the invariants:
//! every telemetry packet Redis holds fits 280 bytes; every failed epoch's rollback
//! restored the model byte for byte; Nissa's alert engine, fed that telemetry,
//! fired and cleared each alert in the evaluation the oracle expects (the counts
//! go to the run's tally); every counter Tolaria moved shows its final value in
//! Nissa's `/metrics` (`telemetry-complete`); every field report Tamiyo's WAL acknowledged is on its
//! disk; the loss fell. Under its own schedule it also checks that the cut was felt.

mod crash;
pub(crate) mod hosts;
pub mod morphogenesis;
mod rollback;
mod rollback_tier;

pub use crash::TolariaCrashScenario;
pub(crate) use hosts::sim_clock;
pub use rollback::RollbackDeadlineScenario;
pub(crate) use rollback::{REDIS, REDIS_PORT, SIM_BUS_SECRET, bus, read_emergency_stream};

use std::time::Duration;

use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{SigningKey, TelemetryPacket};
use esper_core::oona::StreamConfig;
use esper_core::planted::Planted;
use esper_core::tolaria::device::{Dataset, Device, DeviceError, DeviceKind, ModelState, Synthetic};
use esper_core::tolaria::metrics::TolariaCounters;
use esper_core::tolaria::ports::{Outbox, TelemetryPort};
use esper_core::tolaria::{
    CHECKPOINT_PATH, Collaborators, EpochFailure, EpochReport, StepPace, StorageCheckpoints, Trainer,
    TrainingLoopConfig,
};
use esper_sim::redis::ServerConfig;
use esper_sim::{
    ClockSkew, Fault, FaultSchedule, FaultSpace, Invariant, RngTree, ScheduledFault, SimDisk, SimDiskConfig,
    SimScenario, Tally, TurmoilConnector, Violation, World, WorldConfig,
};
use hosts::{
    SIM_EPOCH_MS, TAMIYO, TOLARIA, TamiyoHost, TamiyoTelemetry, tamiyo_client_at, tamiyo_host_with, training_config,
};
use morphogenesis::{Finished, Workload};
use rand::Rng;

use crate::drills::alerts::check_alerts;
use crate::drills::complete::{Produced, check_complete};
use crate::drills::lifecycle::LifecycleWatch;
use crate::drills::wire::{WireReader, WireTelemetry, check_budget};
use rollback_tier::RollbackTier;

trace_target!("control_loop");

/// Epochs at least; the run goes on until an epoch after the last fault consulted
/// Tamiyo and succeeded.
const MIN_EPOCHS: usize = 3;
/// Liveness: after the last fault, such an epoch must start within this much sim
/// time — plus, when the faults opened Tolaria's epoch breaker, its open time
/// (Esper-Lite's designed wait, 30 s), which no fix could shorten. See [`Liveness`].
const LIVENESS_BOUND_MS: u64 = 10_000;
/// A two-way Tolaria–Tamiyo cut at least this long must fail an epoch (the step
/// timeout is 500 ms and an epoch's Tamiyo call comes every ~100 ms).
const FELT_CUT_MS: u64 = 600;
/// How much a drill slows Tolaria's device, in percent of its nominal step time.
/// An epoch is 16 steps of 5 ms; while throttled it fails its 250 ms budget, so
/// Tamiyo is skipped (conservative mode) and the epoch is almost all device time.
/// From 450 % that is 360 ms, over `training_latency_high`'s 350 ms warning; up to
/// 1000 % (800 ms epochs), where a longest window (1.5 s) still holds two of them.
const SLOWDOWN_PERCENT: std::ops::RangeInclusive<u32> = 450..=1_000;

/// The scenario, on one device kind, training one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLoopScenario {
    device: DeviceKind,
    workload: Workload,
}

impl ControlLoopScenario {
    /// On the pure-Rust synthetic device.
    pub const fn synthetic() -> Self {
        Self { device: DeviceKind::Synthetic, workload: Workload::Rc1 }
    }

    /// On libtorch CPU (needs the `tch` feature at run time).
    pub const fn tch_cpu() -> Self {
        Self { device: DeviceKind::Cpu, workload: Workload::Rc1 }
    }

    /// `morphogenesis`: the MLP host on data it is too small for, seeds grafted
    /// (see [`morphogenesis`]), on the synthetic device.
    pub const fn morphogenesis() -> Self {
        Self { device: DeviceKind::Synthetic, workload: Workload::Morphogenesis }
    }

    /// `morphogenesis-tch`: the same on libtorch CPU (needs the `tch` feature at
    /// run time).
    pub const fn morphogenesis_tch() -> Self {
        Self { device: DeviceKind::Cpu, workload: Workload::Morphogenesis }
    }

    /// `morphogenesis-cuda`: the same on libtorch's CUDA device 0 (`tch` builds on a
    /// machine with a GPU; elsewhere the run fails and says why, never falling back
    /// to the CPU).
    pub const fn morphogenesis_cuda() -> Self {
        Self { device: DeviceKind::Cuda(0), workload: Workload::Morphogenesis }
    }
}

impl SimScenario for ControlLoopScenario {
    fn name(&self) -> &'static str {
        match (self.workload, self.device) {
            (Workload::Morphogenesis, DeviceKind::Synthetic) => "morphogenesis",
            (Workload::Morphogenesis, DeviceKind::Cpu) => "morphogenesis-tch",
            (Workload::Morphogenesis, DeviceKind::Cuda(_)) => "morphogenesis-cuda",
            (Workload::Rc1, DeviceKind::Synthetic) => "control-loop",
            (Workload::Rc1, _) => "control-loop-tch",
        }
    }

    fn summary(&self) -> &'static str {
        match (self.workload, self.device) {
            (Workload::Morphogenesis, DeviceKind::Synthetic) => {
                "control-loop on an MLP too small for its data: Tamiyo germinates, Kasmina grafts, blends, fossilizes"
            }
            (Workload::Morphogenesis, DeviceKind::Cpu) => "morphogenesis on libtorch CPU (`tch` builds only)",
            (Workload::Morphogenesis, DeviceKind::Cuda(_)) => {
                "morphogenesis on libtorch CUDA device 0 (`tch` builds, a GPU)"
            }
            (Workload::Rc1, DeviceKind::Synthetic) => {
                "Tolaria trains, Tamiyo decides over signed RPC, Kasmina applies; the link is cut once"
            }
            (Workload::Rc1, _) => "control-loop on libtorch CPU (`tch` builds only)",
        }
    }

    fn world_config(&self) -> WorldConfig {
        // A LAN between trainer and policy: 1–2 ms one way.
        WorldConfig { max_latency: Duration::from_millis(2), ..WorldConfig::default() }
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("partition");
        let start_ms = draws.random_range(self.workload.cut_from_ms());
        let end_ms = start_ms + draws.random_range(600..900);
        let fault = |at_ms, repair: bool| {
            let (a, b) = (TOLARIA.to_owned(), TAMIYO.to_owned());
            ScheduledFault { at_ms, fault: if repair { Fault::Repair { a, b } } else { Fault::Partition { a, b } } }
        };
        FaultSchedule::new(vec![fault(start_ms, false), fault(end_ms, true)])
    }

    fn fault_space(&self) -> Option<FaultSpace> {
        // Faults within the first 3 s (30-odd epochs), none longer than 1.5 s:
        // long enough to fail epochs and trip conservative mode, short enough
        // that liveness after the last fault is a fair question. Tamiyo's WAL is
        // not corrupted at rest: `wal-acknowledged` would rightly fail, and the
        // WAL soak drills that.
        let space = FaultSpace::new(self.workload.faults_within(), Duration::from_millis(1_500), 6)
            .link(TOLARIA, TAMIYO)
            .crashable(&[TAMIYO])
            .stallable(&[TAMIYO])
            .disk(TAMIYO, &[])
            .clocks(&[TOLARIA, TAMIYO], Duration::from_secs(90))
            .devices(&[TOLARIA], SLOWDOWN_PERCENT);
        Some(space)
    }

    fn populate(&self, world: &mut World) {
        let tamiyo = tamiyo_host_with(world, TamiyoTelemetry::Bus, self.workload.tamiyo());
        let (device, workload) = (self.device, self.workload);
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        let rng = world.rng().child("tolaria");
        let expectations = Expectations::of(world.schedule());
        let (disk, skew) = (world.disk(TOLARIA, SimDiskConfig::default()), world.clock_skew(TOLARIA));
        let (pace, tally, planted) = (world.device_pace(TOLARIA), world.tally(), world.planted());
        world.client(TOLARIA, async move {
            train((device, workload), rng, expectations, (disk, skew, pace), (tamiyo, tally, planted)).await
        });
    }

    fn cargo_features(&self) -> &'static [&'static str] {
        match self.device {
            DeviceKind::Synthetic => &[],
            DeviceKind::Cpu | DeviceKind::Cuda(_) => &[esper_sim::TCH_FEATURE],
        }
    }
}

/// What a schedule lets the checks expect.
#[derive(Debug, Clone, Copy)]
struct Expectations {
    /// When the last fault strikes (sim ms): liveness is judged after it.
    quiet_from_ms: u64,
    /// Whether a two-way Tolaria–Tamiyo cut was long enough that it must be felt.
    /// Not when the device was throttled before the cut healed: slow epochs put
    /// Tolaria in conservative mode and can open its epoch breaker for 30 s, and
    /// a trainer that does not call Tamiyo rightly never notices the cut.
    felt_cut: bool,
}

impl Expectations {
    fn of(schedule: &FaultSchedule) -> Self {
        let faults = schedule.faults();
        let quiet_from_ms = faults.last().map_or(0, |last| last.at_ms);
        let felt_cut = faults.iter().enumerate().any(|(index, cut)| {
            let ours = matches!(&cut.fault, Fault::Partition { a, b } if [a, b] == [TOLARIA, TAMIYO] || [a, b] == [TAMIYO, TOLARIA]);
            let repaired = faults[index + 1..].iter().find(|later| cut.fault.ends(&later.fault));
            let throttled = faults.iter().any(|slow| {
                matches!(slow.fault, Fault::DeviceSlow { .. }) && repaired.is_none_or(|repair| slow.at_ms < repair.at_ms)
            });
            ours && !throttled && repaired.is_none_or(|repair| repair.at_ms - cut.at_ms >= FELT_CUT_MS)
        });
        Self { quiet_from_ms, felt_cut }
    }
}

/// The model Tolaria trains: on the synthetic device with the run's planted bug
/// armed there (a leaky blend), otherwise as `device` builds it.
fn build_model(
    device: DeviceKind,
    workload: Workload,
    rng: &RngTree,
    planted: Planted,
) -> Result<Box<dyn Device>, DeviceError> {
    let spec = workload.spec();
    match device {
        DeviceKind::Synthetic => Ok(Box::new(Synthetic::new(spec, &mut rng.stream("model")).with_planted(planted))),
        _ => device.build(spec, &mut rng.stream("model")),
    }
}

async fn train(
    (device, workload): (DeviceKind, Workload),
    rng: RngTree,
    expect: Expectations,
    (disk, skew, pace): (SimDisk, ClockSkew, StepPace),
    (tamiyo, tally, planted): (TamiyoHost, Tally, Planted),
) -> turmoil::Result {
    let spec = workload.spec();
    let dataset: Dataset = workload.dataset(&rng).map_err(|e| e.to_string())?;
    let model = build_model(device, workload, &rng, planted).map_err(|e| e.to_string())?;
    let tier = RollbackTier::draw(&rng);
    let one_snapshot = model.snapshot().map_err(|e| e.to_string())?.len();
    let fast_cap = tier.cap_bytes(one_snapshot, TrainingLoopConfig::default().rollback_fast_cap_bytes);
    let clock = sim_clock();
    let peers = Collaborators {
        tamiyo: tamiyo_client_at(TAMIYO, clock, skew, &rng, planted)?,
        kasmina: SeedManager::new(KasminaConfig { planted, ..workload.kasmina() }),
        telemetry: bus(&rng, "telemetry")?,
        emergency: Outbox::default(),
    };
    let config = TrainingLoopConfig {
        rollback_enabled: true,
        rollback_fast_cap_bytes: fast_cap,
        planted,
        ..training_config(workload.run_id())
    };
    let config_breaker_open_ms = config.breaker.open_ms;
    let mut trainer =
        Trainer::new(config, model, dataset, peers, StorageCheckpoints::new(disk, CHECKPOINT_PATH), clock)
            .map_err(|e| e.to_string())?
            .with_pace(pace);
    let mut reports = Vec::new();
    let mut liveness = Liveness::after(expect.quiet_from_ms, config_breaker_open_ms);
    let (mut recovered, mut rollbacks_with_seed) = (false, 0_u64);
    let mut lifecycle = LifecycleWatch::default();
    while reports.len() < MIN_EPOCHS.max(workload.min_epochs()) || !recovered {
        let started_ms = clock.now_ms() - SIM_EPOCH_MS;
        // Once an epoch after the faults has consulted Tamiyo and succeeded, the
        // deadline is met: a long workload's later epochs may start past it.
        if !recovered {
            liveness.check(started_ms)?;
        }
        let (before, evaluations) =
            (trainer.snapshot().map_err(|e| e.to_string())?, trainer.counters().tamiyo_evaluations_total);
        let report = trainer.run_epoch().await.map_err(|e| e.to_string())?;
        drain_kasmina(trainer.collaborators_mut(), clock.now_ms(), &mut lifecycle).await?;
        let after = trainer.snapshot().map_err(|e| e.to_string())?;
        tier.check_held(fast_cap, trainer.fast_tier_bytes(), after.len())?;
        if report.failure.is_some() && tier.restorable(report.epoch) && after != before {
            let detail = format!(
                "epoch {} failed ({:?}) and was rolled back, but the model differs",
                report.epoch, report.failure
            );
            return Err(Invariant::RollbackRestores.violated(detail).into());
        }
        if report.failure.is_some() && ModelState::decode(&before, &spec).is_ok_and(|state| !state.seeds.is_empty()) {
            rollbacks_with_seed += 1;
        }
        liveness.note(started_ms, report.failure);
        let consulted = trainer.counters().tamiyo_evaluations_total > evaluations;
        recovered |= started_ms >= expect.quiet_from_ms && consulted && report.failure.is_none();
        reports.push(report);
    }
    tier.check(&reports, trainer.counters())?;
    let telemetry = wire_telemetry(trainer.collaborators().telemetry.config()).await?;
    check_budget(&telemetry)?;
    let packets: Vec<TelemetryPacket> = telemetry.into_iter().map(|entry| entry.packet).collect();
    for (alert, counts) in check_alerts(&packets, planted)? {
        for (group, count) in counts.by_group() {
            tally.add(&format!("{group}.{alert}"), count);
        }
    }
    let counters = trainer.counters().named();
    let bus = trainer.collaborators().telemetry.metrics_snapshot();
    check_complete(&packets, &Produced { source: "tolaria", counters: &counters, bus }, clock)?;
    let kasmina = trainer.collaborators().kasmina.counters().named();
    check_complete(&packets, &Produced { source: "kasmina", counters: &kasmina, bus }, clock)?;
    tamiyo.check_reports_durable().await?;
    if expect.felt_cut {
        check_cut_felt(&reports, trainer.counters())?;
    }
    check_progress(&reports)?;
    let snapshot = trainer.snapshot().map_err(|e| e.to_string())?;
    let finished = Finished {
        device,
        kasmina: &trainer.collaborators().kasmina,
        snapshot,
        epochs: trainer.epoch(),
        rollbacks_with_seed,
    };
    workload.judge(&finished, &rng, &tally)?;
    Ok(())
}

/// Kasmina's telemetry (its seeds and counters, `kasmina.isolation.violations`
/// among them) drained onto Tolaria's bus after each epoch, as `esper up` does.
/// A refused packet is Tolaria's bus's counted drop.
/// Each batch is judged by `seed-lifecycle` first, as Kasmina made it.
async fn drain_kasmina<T, M: TelemetryPort, E>(
    peers: &mut Collaborators<T, SeedManager, M, E>,
    now_ms: u64,
    lifecycle: &mut LifecycleWatch,
) -> Result<(), Violation> {
    let batch = peers.kasmina.telemetry(now_ms);
    lifecycle.observe(&batch)?;
    for packet in batch {
        if let Err(error) = peers.telemetry.publish_telemetry(&packet).await {
            tracing::warn!(target: TRACE_TARGET, %error, packet_id = %packet.packet_id, "kasmina.telemetry_failed");
        }
    }
    Ok(())
}

/// The liveness deadline: an epoch that consults Tamiyo and succeeds must start
/// within [`LIVENESS_BOUND_MS`] of the last fault. Three failed epochs in a row
/// (a throttled device does that) open the epoch breaker, which then refuses
/// epochs for its open time by design; if it opened before the deadline, the
/// deadline moves out by that time, once — a breaker that keeps reopening after
/// the faults are over is still a liveness failure.
#[derive(Debug, Clone, Copy)]
struct Liveness {
    quiet_from_ms: u64,
    deadline_ms: u64,
    breaker_open_ms: u64,
    extended: bool,
}

impl Liveness {
    fn after(quiet_from_ms: u64, breaker_open_ms: u64) -> Self {
        Self { quiet_from_ms, deadline_ms: quiet_from_ms + LIVENESS_BOUND_MS, breaker_open_ms, extended: false }
    }

    /// Notes an epoch that started at `started_ms`: the first one refused by an
    /// open breaker before the deadline grants the breaker's open time.
    fn note(&mut self, started_ms: u64, failure: Option<EpochFailure>) {
        if failure == Some(EpochFailure::BreakerOpen) && !self.extended && started_ms <= self.deadline_ms {
            self.deadline_ms = started_ms + self.breaker_open_ms + LIVENESS_BOUND_MS;
            self.extended = true;
        }
    }

    fn check(&self, started_ms: u64) -> Result<(), Violation> {
        if started_ms <= self.deadline_ms {
            return Ok(());
        }
        let breaker = if self.extended { " and the epoch breaker's open time" } else { "" };
        Err(Invariant::Liveness.violated(format!(
            "no epoch consulted Tamiyo and succeeded by {} ms ({LIVENESS_BOUND_MS} ms after the last fault at {} ms{breaker})",
            self.deadline_ms, self.quiet_from_ms
        )))
    }
}

/// Every telemetry packet Tolaria's bus client got into the world's Redis, as
/// Redis holds it (telemetry rides the emergency stream when an event raised its
/// priority).
async fn wire_telemetry(config: &StreamConfig) -> Result<Vec<WireTelemetry>, String> {
    let reader = WireReader {
        connector: TurmoilConnector,
        host: REDIS.to_owned(),
        port: REDIS_PORT,
        key: SigningKey::new(SIM_BUS_SECRET.to_vec()).map_err(|e| e.to_string())?,
        now_ms: sim_clock().now_ms(),
    };
    reader.telemetry(&[&config.telemetry_stream, &config.emergency_stream]).await
}

/// The cut this scenario's own schedule makes was noticed and failed an epoch.
fn check_cut_felt(reports: &[EpochReport], counters: TolariaCounters) -> Result<(), Violation> {
    if counters.timeout_tamiyo_total + counters.hook_errors_total == 0 {
        return Err(
            Invariant::Scenario.violated(format!("the Tamiyo link was cut but Tolaria never noticed: {counters:?}"))
        );
    }
    if !reports.iter().any(|r| r.failure.is_some()) {
        return Err(Invariant::Scenario.violated("a Tamiyo outage longer than the step timeout must fail an epoch"));
    }
    Ok(())
}

/// Progress: the loss fell.
fn check_progress(reports: &[EpochReport]) -> Result<(), Violation> {
    let (first, last) = (reports.first().map(|r| r.loss), reports.last().map(|r| r.loss));
    match (first, last) {
        (Some(first), Some(last)) if last < first => Ok(()),
        _ => {
            let losses = reports.iter().map(|r| r.loss).collect::<Vec<_>>();
            Err(Invariant::Scenario.violated(format!("loss did not fall: {losses:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_MS: u64 = 30_000;

    fn at(at_ms: u64, fault: Fault) -> ScheduledFault {
        ScheduledFault { at_ms, fault }
    }

    #[test]
    fn a_long_cut_must_be_felt_unless_the_device_was_throttled_before_it_healed() {
        let (a, b, host) = (|| TOLARIA.to_owned(), || TAMIYO.to_owned(), || TOLARIA.to_owned());
        let cut = || vec![at(1_000, Fault::Partition { a: a(), b: b() }), at(1_700, Fault::Repair { a: a(), b: b() })];
        assert!(Expectations::of(&FaultSchedule::new(cut())).felt_cut);
        let mut throttled = cut();
        throttled.push(at(400, Fault::DeviceSlow { host: host(), factor_percent: 500 }));
        throttled.push(at(900, Fault::DeviceHeal { host: host() }));
        assert!(!Expectations::of(&FaultSchedule::new(throttled)).felt_cut);
        let mut throttled_after = cut();
        throttled_after.push(at(1_800, Fault::DeviceSlow { host: host(), factor_percent: 500 }));
        assert!(Expectations::of(&FaultSchedule::new(throttled_after)).felt_cut);
    }

    #[test]
    fn liveness_fails_past_the_bound_after_the_last_fault() {
        let liveness = Liveness::after(4_000, OPEN_MS);
        assert!(liveness.check(14_000).is_ok());
        let violation = liveness.check(14_001).expect_err("past the bound");
        assert_eq!(violation.invariant, Invariant::Liveness);
    }

    #[test]
    fn a_breaker_the_faults_opened_extends_the_deadline_by_its_open_time_once() {
        let mut liveness = Liveness::after(4_000, OPEN_MS);
        liveness.note(3_500, Some(EpochFailure::BreakerOpen));
        assert!(liveness.check(43_500).is_ok(), "the breaker's designed wait is granted");
        liveness.note(40_000, Some(EpochFailure::BreakerOpen));
        assert!(liveness.check(43_501).is_err(), "a breaker that reopens afterwards is a liveness failure");
    }

    #[test]
    fn a_breaker_opening_after_the_deadline_or_another_failure_grants_nothing() {
        let mut liveness = Liveness::after(4_000, OPEN_MS);
        liveness.note(5_000, Some(EpochFailure::EpochBudget));
        liveness.note(14_500, Some(EpochFailure::BreakerOpen));
        assert!(liveness.check(14_001).is_err());
    }
}
