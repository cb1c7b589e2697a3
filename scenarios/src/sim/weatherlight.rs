//! `weatherlight`: Weatherlight restarts a crashed Tamiyo, then a hung one, and
//! the training loop carries on; CRITICAL telemetry reaches the emergency stream
//! and Weatherlight's counters say exactly how much.
//!
//! The `weatherlight` host runs the real [`Weatherlight`] supervising two
//! services: `tamiyo` (the real service over signed RPC, its field-report WAL on
//! the host's disk, beating every 100 ms) and `drill`, which raises CRITICAL
//! telemetry on behalf of Tamiyo, Tolaria and Kasmina at seeded times.
//! Weatherlight publishes through the real Oona client into the simulated Redis.
//! Tamiyo's first life fails (returns an error) at a seeded moment; its second
//! life hangs — stops serving and beating — at another. Weatherlight restarts the
//! first after its backoff and aborts the second at the first heartbeat past the
//! 500 ms deadline, then restarts it (at a quarter of Esper-Lite's pace, see
//! [`supervisor_config`]). The injected faults live on the host as
//! data drawn from the seed (like the RC1 drills' stall plans), because they act
//! inside one process, below the host-level faults of the schedule.
//!
//! The `tolaria` client trains against Tamiyo on the `weatherlight` host
//! throughout. Once the third Tamiyo life has answered for two epochs, it asks
//! Weatherlight to stop and checks: Tamiyo lived three times (one crash, one
//! hang); Tolaria felt the outages and was answered again after the last restart;
//! the loss fell; the emergency counters equal the injected CRITICAL packets
//! (Tamiyo's apart, and the time of Tamiyo's last); and the emergency stream,
//! read back as a consumer, holds exactly those CRITICAL packets.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{BusMessageType, TelemetryEvent, TelemetryLevel, TelemetryPacket, Timestamp};
use esper_core::net::Connector as _;
use esper_core::oona::Backoff;
use esper_core::planted::Planted;
use esper_core::tolaria::device::{Dataset, DeviceKind, ModelSpec};
use esper_core::tolaria::ports::{Outbox, TelemetryPort as _};
use esper_core::tolaria::{CHECKPOINT_PATH, Collaborators, EpochReport, StorageCheckpoints, Trainer};
use esper_core::weatherlight::{
    EmergencyCounters, ServiceContext, ServiceError, ServiceFuture, ServiceSpec, SupervisorConfig, Weatherlight,
    WeatherlightReport,
};
use esper_sim::redis::ServerConfig;
use esper_sim::{RngTree, SimDisk, SimDiskConfig, SimScenario, TurmoilConnector, World, WorldConfig};
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};

use crate::sim::control_loop::hosts::{
    FIELD_REPORT_DIR, TAMIYO_PORT, rpc_config, serve_tamiyo_with_wal, sim_clock, tamiyo_client_at, training_config,
};
use crate::sim::control_loop::{REDIS, REDIS_PORT, bus};
use crate::sim::oona_checks::backoff_ceiling;

trace_target!("weatherlight");

const WEATHERLIGHT: &str = "weatherlight";
const TOLARIA: &str = "tolaria";
/// Tamiyo beats this often and is declared hung after this long without a beat.
const BEAT_EVERY: Duration = Duration::from_millis(100);
const HUNG_AFTER: Duration = Duration::from_millis(500);
/// Epochs at most, so a scenario bug cannot spin forever.
const MAX_EPOCHS: usize = 120;
/// Epochs the third Tamiyo life must answer before the run ends.
const EPOCHS_AFTER_RECOVERY: usize = 2;
/// CRITICAL packets the drill raises.
const DRILL_PACKETS: usize = 6;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeatherlightScenario;

/// The faults injected on the `weatherlight` host, drawn from the seed.
#[derive(Debug, Clone)]
struct Plan {
    /// Sim ms after its start at which Tamiyo's first life fails.
    crash_after_ms: u64,
    /// Sim ms after its start at which Tamiyo's second life hangs.
    hang_after_ms: u64,
    /// (sim ms, source) of each CRITICAL packet.
    drills: Vec<(u64, &'static str)>,
}

impl Plan {
    fn draw(rng: &RngTree) -> Self {
        let mut draws = rng.stream("weatherlight.plan");
        let sources = ["tamiyo", "tolaria", "kasmina"];
        let mut drills: Vec<(u64, &'static str)> =
            (0..DRILL_PACKETS).map(|_| (draws.random_range(100..1_500), sources[draws.random_range(0..3)])).collect();
        drills.sort_unstable();
        Self { crash_after_ms: draws.random_range(150..500), hang_after_ms: draws.random_range(150..500), drills }
    }
}

/// What the hosts tell the client (an oracle outside the system).
#[derive(Debug, Default)]
struct Journal {
    report: Option<WeatherlightReport>,
    error: Option<String>,
    /// Tamiyo's drill packets sent, and the Unix ms of the last one.
    tamiyo_drills: u64,
    last_tamiyo_drill_ms: Option<u64>,
    /// When each Tamiyo life started (one entry per life), and when it ended (its
    /// crash returned, or Weatherlight dropped it: the hang's abort, the
    /// shutdown), on the `weatherlight` host's clock, the one its supervisor
    /// schedules restarts by.
    tamiyo_started: Vec<Instant>,
    tamiyo_ended: Vec<Instant>,
}

impl SimScenario for WeatherlightScenario {
    fn name(&self) -> &'static str {
        "weatherlight"
    }

    fn summary(&self) -> &'static str {
        "Weatherlight restarts a crashed and a hung Tamiyo while Tolaria trains; CRITICAL telemetry is counted onto the emergency stream"
    }

    fn world_config(&self) -> WorldConfig {
        WorldConfig { max_latency: Duration::from_millis(2), ..WorldConfig::default() }
    }

    fn populate(&self, world: &mut World) {
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        let plan = Plan::draw(world.rng());
        let tamiyo_disk = world.disk(WEATHERLIGHT, SimDiskConfig::default());
        let tolaria_disk = world.disk(TOLARIA, SimDiskConfig::default());
        let journal = Rc::new(RefCell::new(Journal::default()));
        let stop = Rc::new(Notify::new());
        let rng = world.rng().child(WEATHERLIGHT);
        let (log, stop_signal) = (Rc::clone(&journal), Rc::clone(&stop));
        world.host(WEATHERLIGHT, move || {
            let (plan, disk, rng, log, stop) =
                (plan.clone(), tamiyo_disk.clone(), rng.clone(), Rc::clone(&log), Rc::clone(&stop_signal));
            async move {
                if let Err(error) = supervise(plan, disk, &rng, &log, &stop).await {
                    log.borrow_mut().error.get_or_insert(error);
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        let restarts = restart_delays(&world.rng().child(WEATHERLIGHT));
        let rng = world.rng().child(TOLARIA);
        world.client(
            TOLARIA,
            async move { train(rng, tolaria_disk, &journal, &stop, &restarts).await.map_err(Into::into) },
        );
    }
}

/// The `weatherlight` host: supervise Tamiyo and the drill until told to stop.
async fn supervise(
    plan: Plan,
    disk: SimDisk,
    rng: &RngTree,
    journal: &Rc<RefCell<Journal>>,
    stop: &Notify,
) -> Result<(), String> {
    let mut weatherlight = Weatherlight::new(supervisor_config(), sim_clock(), rng.stream(RESTARTS_STREAM));
    let tamiyo_rng = rng.child("tamiyo");
    let (log, crash_after_ms, hang_after_ms) = (Rc::clone(journal), plan.crash_after_ms, plan.hang_after_ms);
    weatherlight.add(ServiceSpec::daemon("tamiyo").beating_within(HUNG_AFTER), move |context: ServiceContext| {
        log.borrow_mut().tamiyo_started.push(Instant::now());
        let ids = tamiyo_rng.child(&format!("life-{}", context.life())).stream("command_ids");
        let ended = LifeEnd(Rc::clone(&log));
        tamiyo_life(context, disk.clone(), ids, (crash_after_ms, hang_after_ms), ended)
    });
    let (log, drills) = (Rc::clone(journal), plan.drills.clone());
    weatherlight.add(ServiceSpec::daemon("drill"), move |context: ServiceContext| {
        drill_life(context, drills.clone(), Rc::clone(&log))
    });
    let mut publisher = bus(rng, "weatherlight")?;
    let report = weatherlight.run(&mut publisher, stop.notified()).await;
    journal.borrow_mut().report = Some(report);
    Ok(())
}

/// The supervisor's first restart delay and its cap, here a quarter of Esper-Lite's.
const RESTART_BASE: Duration = Duration::from_millis(250);
const RESTART_CAP: Duration = Duration::from_millis(7_500);

/// Esper-Lite's supervisor at a quarter of its pace (backoff from 250 ms to 7.5 s,
/// heartbeats every 250 ms), so a run needs fewer simulated seconds; the logic is
/// the same, and the unit tests and `esper up` use the original values.
fn supervisor_config() -> SupervisorConfig {
    SupervisorConfig {
        restart_backoff: Backoff::new(RESTART_BASE, RESTART_CAP),
        heartbeat_interval: Duration::from_millis(250),
        ..SupervisorConfig::default()
    }
}

/// Notes in the journal when a Tamiyo life ended, however it ended: it is
/// dropped with the life's future.
struct LifeEnd(Rc<RefCell<Journal>>);

impl Drop for LifeEnd {
    fn drop(&mut self) {
        // A journal borrowed elsewhere loses the entry, and the pacing check
        // then reports the missing end rather than a wrong gap.
        if let Ok(mut journal) = self.0.try_borrow_mut() {
            journal.tamiyo_ended.push(Instant::now());
        }
    }
}

/// One Tamiyo life: serve and beat; the first life fails and the second hangs
/// after the plan's delays, later lives run until stopped.
fn tamiyo_life(
    context: ServiceContext,
    disk: SimDisk,
    ids: rand_chacha::ChaCha8Rng,
    (crash_after_ms, hang_after_ms): (u64, u64),
    ended: LifeEnd,
) -> ServiceFuture {
    Box::pin(async move {
        let _ended = ended;
        let listener = TurmoilConnector.bind(TAMIYO_PORT).await?;
        // Tamiyo's step telemetry stays unread here: this world's checks count the
        // hub's CRITICAL packets to the emergency stream, and Tamiyo's traffic
        // through the same hub (sent in `esper up`) delayed the last drill packet
        // past the run's end (seed 1).
        let telemetry = Outbox::default();
        let serve =
            serve_tamiyo_with_wal(listener, disk, FIELD_REPORT_DIR, (sim_clock(), ids), rpc_config()?, telemetry);
        let beat = async {
            loop {
                context.beat();
                sleep(BEAT_EVERY).await;
            }
        };
        let fault = async {
            match context.life() {
                0 => sleep(Duration::from_millis(crash_after_ms)).await,
                1 => sleep(Duration::from_millis(hang_after_ms)).await,
                _ => std::future::pending().await,
            }
        };
        // Pinned out here so that a hang keeps the server alive but unpolled: its
        // socket stays open and requests go unanswered, as in a hung process.
        let mut serve = pin!(serve);
        tokio::select! {
            reason = &mut serve => Err(ServiceError(reason)),
            _ = beat => Ok(()),
            () = context.stopped() => Ok(()),
            () = fault => {
                if context.life() == 0 {
                    tracing::warn!(target: TRACE_TARGET, "tamiyo: injected crash");
                    return Err(ServiceError("injected crash".to_owned()));
                }
                tracing::warn!(target: TRACE_TARGET, "tamiyo: injected hang");
                std::future::pending().await
            }
        }
    })
}

/// Raises the plan's CRITICAL packets through the hub (on its first life; a
/// restarted drill would not repeat them), then waits to be stopped.
fn drill_life(
    context: ServiceContext,
    drills: Vec<(u64, &'static str)>,
    journal: Rc<RefCell<Journal>>,
) -> ServiceFuture {
    Box::pin(async move {
        let mut hub = context.telemetry();
        let origin = Instant::now() - turmoil::sim_elapsed().unwrap_or_default();
        for (index, (at_ms, source)) in drills.into_iter().enumerate() {
            sleep_until(origin + Duration::from_millis(at_ms)).await;
            let now_ms = sim_clock().now_ms();
            let packet = TelemetryPacket {
                packet_id: format!("drill-{index}"),
                timestamp: Some(Timestamp::from_millis(now_ms)),
                source_subsystem: source.to_owned(),
                level: TelemetryLevel::Critical.into(),
                events: vec![TelemetryEvent::named("drill.critical", TelemetryLevel::Critical, &[])],
                ..TelemetryPacket::default()
            };
            hub.publish_telemetry(&packet).await.map_err(|e| ServiceError(e.to_string()))?;
            if source == "tamiyo" {
                let mut journal = journal.borrow_mut();
                journal.tamiyo_drills += 1;
                journal.last_tamiyo_drill_ms = Some(now_ms);
            }
        }
        context.stopped().await;
        Ok(())
    })
}

/// The `tolaria` client: train until the third Tamiyo life has answered, stop
/// Weatherlight, check.
async fn train(
    rng: RngTree,
    disk: SimDisk,
    journal: &RefCell<Journal>,
    stop: &Notify,
    restarts: &[Duration],
) -> Result<(), String> {
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut rng.stream("dataset"));
    let model = DeviceKind::Synthetic.build(spec, &mut rng.stream("model")).map_err(|e| e.to_string())?;
    let clock = sim_clock();
    let peers = Collaborators {
        tamiyo: tamiyo_client_at(WEATHERLIGHT, clock, esper_sim::ClockSkew::default(), &rng, Planted::NONE)?,
        kasmina: SeedManager::new(KasminaConfig::default()),
        telemetry: Outbox::default(),
        emergency: Outbox::default(),
    };
    let store = StorageCheckpoints::new(disk, CHECKPOINT_PATH);
    let config = training_config("sim-weatherlight");
    let mut trainer = Trainer::new(config, model, dataset, peers, store, clock).map_err(|e| e.to_string())?;
    let mut reports: Vec<EpochReport> = Vec::new();
    let mut evaluations = Vec::new();
    let mut recovered_at = None;
    while reports.len() < MAX_EPOCHS {
        if let Some(error) = &journal.borrow().error {
            return Err(format!("weatherlight failed: {error}"));
        }
        if recovered_at.is_none() && journal.borrow().tamiyo_started.len() >= 3 {
            recovered_at = Some(reports.len());
        }
        if recovered_at.is_some_and(|at| reports.len() > at + EPOCHS_AFTER_RECOVERY) {
            break;
        }
        reports.push(trainer.run_epoch().await.map_err(|e| e.to_string())?);
        evaluations.push(trainer.counters().tamiyo_evaluations_total);
    }
    stop.notify_one();
    let report = wait_for_report(journal).await?;
    check_training(&reports, &evaluations, trainer.counters())?;
    check_supervision(&report)?;
    check_restart_pacing(&journal.borrow(), restarts)?;
    check_emergency(&report.emergency, journal)?;
    check_emergency_stream(&rng, report.emergency.telemetry_total).await
}

async fn wait_for_report(journal: &RefCell<Journal>) -> Result<WeatherlightReport, String> {
    for _ in 0..1_000 {
        if let Some(report) = journal.borrow_mut().report.take() {
            return Ok(report);
        }
        sleep(Duration::from_millis(10)).await;
    }
    Err("Weatherlight did not return within 10 s of being asked to stop".to_owned())
}

/// The loop went on: the outages were felt, Tamiyo answered again at the end, the loss fell.
fn check_training(
    reports: &[EpochReport],
    evaluations: &[u64],
    counters: esper_core::tolaria::metrics::TolariaCounters,
) -> Result<(), String> {
    if counters.timeout_tamiyo_total + counters.hook_errors_total == 0 {
        return Err(format!("Tamiyo was down twice but Tolaria never noticed: {counters:?}"));
    }
    if !matches!(evaluations, [.., before, after] if after > before) {
        return Err(format!("liveness: the restarted Tamiyo did not answer in the last epoch: {evaluations:?}"));
    }
    match (reports.first(), reports.last()) {
        (Some(first), Some(last)) if last.loss < first.loss => Ok(()),
        _ => Err(format!("loss did not fall: {:?}", reports.iter().map(|r| r.loss).collect::<Vec<_>>())),
    }
}

/// Tamiyo lived three times: one crash, one hang; nothing else crashed.
fn check_supervision(report: &WeatherlightReport) -> Result<(), String> {
    let tamiyo = report.service("tamiyo").ok_or("no Tamiyo in Weatherlight's report")?;
    if (tamiyo.lives, tamiyo.crashes, tamiyo.hung) != (3, 2, 1) {
        return Err(format!("expected 3 Tamiyo lives, 2 crashes, 1 hang: {tamiyo:?}"));
    }
    match report.service("drill") {
        Some(drill) if drill.crashes == 0 => Ok(()),
        other => Err(format!("the drill service crashed: {other:?}")),
    }
}

/// How late the supervisor may act on a crash or a due restart: it finishes the
/// publish it is awaiting first (a heartbeat's status, a routed packet), a few
/// milliseconds over the simulated network.
const SUPERVISOR_LATE: Duration = Duration::from_millis(50);

/// The random stream, under the `weatherlight` host's, that the scenario hands
/// the supervisor: only restart delays are drawn from it.
const RESTARTS_STREAM: &str = "restarts";

/// The wait before each of Tamiyo's two restarts, as the supervisor must draw
/// it: Esper-Lite's `d + U(0, d/4)`, `d` doubling per crash from
/// [`RESTART_BASE`] (the counter resets only after a life of `stable_after`,
/// 60 s, which neither crashed life reaches), the jitter in whole microseconds
/// from the stream the scenario gave it ([`RESTARTS_STREAM`]; the drill service
/// never crashes in a passing run, so Tamiyo's restarts are its only draws).
/// Knowing the draws, the check can tell a supervisor that never jitters from
/// one that drew a short wait.
fn restart_delays(weatherlight: &RngTree) -> Vec<Duration> {
    let mut draws = weatherlight.stream(RESTARTS_STREAM);
    (0..2)
        .map(|attempt| {
            let ceiling = backoff_ceiling(RESTART_BASE, RESTART_CAP, attempt);
            let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
            ceiling + Duration::from_micros(draws.random_range(0..=ceiling_us / 4))
        })
        .collect()
}

/// Weatherlight waited out exactly its drawn backoff before each restart
/// ([`restart_delays`]): restart `n` comes `delays[n]` after the life before
/// ended, plus at most [`SUPERVISOR_LATE`].
fn check_restart_pacing(journal: &Journal, delays: &[Duration]) -> Result<(), String> {
    let gaps: Vec<Duration> = journal
        .tamiyo_ended
        .iter()
        .zip(journal.tamiyo_started.iter().skip(1))
        .map(|(ended, started)| started.saturating_duration_since(*ended))
        .collect();
    if gaps.len() != delays.len() {
        return Err(format!(
            "Tamiyo's restarts are not all in the journal: {} lives started, {} ended",
            journal.tamiyo_started.len(),
            journal.tamiyo_ended.len()
        ));
    }
    for (restart, (gap, delay)) in (1_u32..).zip(gaps.iter().zip(delays)) {
        let latest = *delay + SUPERVISOR_LATE;
        if *gap < *delay || *gap > latest {
            return Err(format!(
                "restart {restart} of Tamiyo came {gap:?} after the life before ended; the supervisor drew a \
                 backoff of {delay:?}, so it must come within [{delay:?}, {latest:?}]"
            ));
        }
    }
    Ok(())
}

/// The counters equal the injected CRITICAL packets: all of them, Tamiyo's
/// apart, and the time Tamiyo's last was raised.
fn check_emergency(counters: &EmergencyCounters, journal: &RefCell<Journal>) -> Result<(), String> {
    let journal = journal.borrow();
    let expected = (DRILL_PACKETS as u64, journal.tamiyo_drills, journal.last_tamiyo_drill_ms, 0);
    let counted =
        (counters.telemetry_total, counters.tamiyo_total, counters.tamiyo_last_ms, counters.publish_failures_total);
    if counted != expected {
        return Err(format!("injected (total, tamiyo, tamiyo last ms, failures) {expected:?}, counted {counted:?}"));
    }
    Ok(())
}

/// The emergency stream holds exactly the injected CRITICAL packets.
async fn check_emergency_stream(rng: &RngTree, expected: u64) -> Result<(), String> {
    let mut reader = bus(rng, "emergency-reader")?;
    let stream = reader.config().emergency_stream.clone();
    reader.ensure_consumer_group(&stream).await.map_err(|e| e.to_string())?;
    let mut critical = BTreeSet::new();
    for _ in 0..16 {
        let round = reader
            .consume(&stream, |delivery| {
                if delivery.envelope.message_type() == BusMessageType::Telemetry {
                    let packet: TelemetryPacket = delivery.envelope.open()?;
                    if EmergencyCounters::is_emergency(&packet) {
                        critical.insert(packet.packet_id);
                    }
                }
                Ok::<(), esper_core::leyline::DecodeError>(())
            })
            .await
            .map_err(|e| e.to_string())?;
        if round.handled == 0 && round.claimed == 0 {
            break;
        }
    }
    let wanted: BTreeSet<String> = (0..DRILL_PACKETS).map(|index| format!("drill-{index}")).collect();
    if critical != wanted || expected != wanted.len() as u64 {
        return Err(format!("CRITICAL packets on the emergency stream: {critical:?}, expected {wanted:?}"));
    }
    Ok(())
}
