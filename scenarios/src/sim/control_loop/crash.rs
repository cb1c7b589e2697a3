//! `tolaria-crash`: the Tolaria host crashes mid-epoch and restarts, twice.
//!
//! Tolaria checkpoints to its simulated disk (`StorageCheckpoints`: one CRC-framed
//! record, replaced atomically) at every epoch end. At seeded moments the host
//! crashes — its software is dropped mid-step and the disk loses whatever was not
//! fsynced — and restarts a little later. Each restarted Tolaria resumes from the
//! checkpoint and trains to the end. The first restart's rewind often makes Tamiyo
//! germinate, so the second crash often falls while a seed is grafted: the checkpoint
//! must then carry the seed's parameters and Kasmina's plan for it (stage, alpha,
//! blend) — before it carried the plan, 24 of seeds 0..50 ended with the seed
//! dropped. The `weatherlight` observer then checks that every restart resumed from a
//! real checkpoint and that the final parameters — host and grafted seeds — are byte
//! for byte those of an uninterrupted run.
//!
//! Tamiyo's decisions change the model (a germinated seed is grafted into it), and a
//! restarted Tolaria asks again for the steps its previous life had already taken, so
//! the uninterrupted run is given the decisions the surviving trajectory was given:
//! every life records Tamiyo's answer per global step, a later life's answer replacing
//! an earlier one, and the observer replays them into a fresh trainer. What the check
//! then isolates is the checkpoint: anything it forgets (a seed's weights, Kasmina's
//! stage or alpha, optimizer momentum) shows as a different final model.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{AdaptationCommand, SystemStatePacket};
use esper_core::tolaria::device::{Dataset, DeviceKind, ModelSpec};
use esper_core::tolaria::metrics::TolariaCounters;
use esper_core::tolaria::{CHECKPOINT_PATH, Collaborators, StorageCheckpoints, Trainer};
use esper_sim::{
    ClockSkew, Fault, FaultSchedule, Incarnations, RngTree, ScheduledFault, SimDiskConfig, SimScenario, World,
    WorldConfig,
};
use rand::Rng;

use esper_core::tolaria::ports::{Outbox, PortError, TamiyoPort};

use super::hosts::{TOLARIA, TamiyoTelemetry, sim_clock, tamiyo_client, tamiyo_host, training_config};

const OBSERVER: &str = "weatherlight";
const EPOCHS: u32 = 6;
/// Crashes per run, each followed by a restart (see the module docs for why two).
const CRASHES: usize = 2;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TolariaCrashScenario;

/// Tamiyo's answer per global step.
type Decisions = BTreeMap<u64, AdaptationCommand>;

/// What the Tolaria incarnations tell the observer (an oracle outside the system).
#[derive(Debug, Default)]
struct Journal {
    /// Per start of the host: the checkpoint it resumed from, if any.
    resumed: Vec<Option<(u32, u64)>>,
    /// The final parameters and epoch, and the last life's counters, once finished.
    finished: Option<(Vec<u8>, u32, TolariaCounters)>,
    /// The first error a Tolaria incarnation hit.
    error: Option<String>,
    /// Tamiyo's answer per global step; a later life's replaces an earlier one's.
    decisions: Decisions,
}

/// Tolaria's Tamiyo client, noting every answer in the journal.
struct Recorded<'a, T> {
    tamiyo: T,
    journal: &'a RefCell<Journal>,
}

impl<T: TamiyoPort> TamiyoPort for Recorded<'_, T> {
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError> {
        let command = self.tamiyo.evaluate_step(packet).await?;
        self.journal.borrow_mut().decisions.insert(packet.global_step, command.clone());
        Ok(command)
    }
}

/// The uninterrupted run's Tamiyo: the recorded answer for each step, and a refusal
/// for a step no life was answered at (which the observer reports).
struct Replayed(Decisions);

impl TamiyoPort for Replayed {
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError> {
        self.0.get(&packet.global_step).cloned().ok_or_else(|| PortError::Refused {
            service: "tamiyo",
            reason: format!("no recorded decision for step {}", packet.global_step),
        })
    }
}

impl SimScenario for TolariaCrashScenario {
    fn name(&self) -> &'static str {
        "tolaria-crash"
    }

    fn summary(&self) -> &'static str {
        "Tolaria crashes mid-epoch twice; each restart resumes from its on-disk checkpoint (seeds and Kasmina's plan included) and ends as an unbroken run"
    }

    fn world_config(&self) -> WorldConfig {
        WorldConfig { max_latency: Duration::from_millis(2), ..WorldConfig::default() }
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("crash");
        let mut faults = Vec::new();
        let mut at_ms = 0;
        for _ in 0..CRASHES {
            let crash_ms = at_ms + draws.random_range(200..400);
            at_ms = crash_ms + draws.random_range(20..100);
            faults.push(ScheduledFault { at_ms: crash_ms, fault: Fault::Crash { host: TOLARIA.to_owned() } });
            faults.push(ScheduledFault { at_ms, fault: Fault::Restart { host: TOLARIA.to_owned() } });
        }
        FaultSchedule::new(faults)
    }

    fn populate(&self, world: &mut World) {
        tamiyo_host(world, TamiyoTelemetry::Unread);
        let disk = world.disk(TOLARIA, SimDiskConfig::default());
        let rng = world.rng().child("tolaria");
        let lives = Incarnations::new(rng.child("lives"));
        let journal = Rc::new(RefCell::new(Journal::default()));
        let log = Rc::clone(&journal);
        world.host(TOLARIA, move || {
            let (disk, rng, life, log) = (disk.clone(), rng.clone(), lives.next(), Rc::clone(&log));
            async move {
                if let Err(error) = incarnation(disk, &rng, &life, &log).await {
                    log.borrow_mut().error.get_or_insert(error);
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        let rng = world.rng().child("tolaria");
        let disk = world.disk(OBSERVER, SimDiskConfig::default());
        world.client(OBSERVER, async move { observe(&journal, &rng, disk).await.map_err(Into::into) });
    }
}

/// One life of the Tolaria host: resume, train to the end, report. The data and the
/// initial model come from `rng` (the same in every life); nonces from `life`.
async fn incarnation(
    disk: esper_sim::SimDisk,
    rng: &RngTree,
    life: &RngTree,
    log: &RefCell<Journal>,
) -> Result<(), String> {
    let tamiyo = Recorded { tamiyo: tamiyo_client(sim_clock(), ClockSkew::default(), life)?, journal: log };
    let mut trainer = trainer(tamiyo, disk, rng)?;
    let resumed = trainer.resume().await.map_err(|e| e.to_string())?;
    log.borrow_mut().resumed.push(resumed);
    trainer.run(EPOCHS).await.map_err(|e| e.to_string())?;
    let snapshot = trainer.snapshot().map_err(|e| e.to_string())?;
    log.borrow_mut().finished = Some((snapshot, trainer.epoch(), trainer.counters()));
    Ok(())
}

/// The trainer each life of Tolaria runs, with its Tamiyo `T`.
type Life<T> = Trainer<(T, SeedManager, Outbox, Outbox, StorageCheckpoints<esper_sim::SimDisk>)>;

/// A Tolaria trainer on `disk` with `tamiyo`: the data and the initial model come
/// from `rng`, so every life and the uninterrupted run start alike.
fn trainer<T: TamiyoPort>(tamiyo: T, disk: esper_sim::SimDisk, rng: &RngTree) -> Result<Life<T>, String> {
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut rng.stream("dataset"));
    let model = DeviceKind::Synthetic.build(spec, &mut rng.stream("model")).map_err(|e| e.to_string())?;
    let peers = Collaborators {
        tamiyo,
        kasmina: SeedManager::new(KasminaConfig::default()),
        telemetry: Outbox::default(),
        emergency: Outbox::default(),
    };
    let store = StorageCheckpoints::new(disk, CHECKPOINT_PATH);
    let config = training_config("sim-tolaria-crash");
    Trainer::new(config, model, dataset, peers, store, sim_clock()).map_err(|e| e.to_string())
}

/// Waits for Tolaria to finish, then checks the resumes and the final parameters.
async fn observe(journal: &RefCell<Journal>, rng: &RngTree, disk: esper_sim::SimDisk) -> Result<(), String> {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some((snapshot, decisions)) = finished_run(&journal.borrow())? else { continue };
        return if snapshot == unbroken_run(decisions, disk, rng).await? {
            Ok(())
        } else {
            Err("parameters after crash + resume differ from an uninterrupted run given the same decisions".to_owned())
        };
    }
}

/// Once Tolaria has finished: checks every start's resume and Tamiyo's answers, and
/// gives the final parameters with the decisions they were trained under. `None`
/// while Tolaria is still training.
fn finished_run(journal: &Journal) -> Result<Option<(Vec<u8>, Decisions)>, String> {
    if let Some(error) = &journal.error {
        return Err(format!("tolaria failed: {error}"));
    }
    let Some((snapshot, epoch, counters)) = &journal.finished else { return Ok(None) };
    let [first, restarts @ ..] = journal.resumed.as_slice() else {
        return Err("Tolaria never started".to_owned());
    };
    if restarts.len() != CRASHES {
        return Err(format!("expected {CRASHES} crashes and restarts, saw {} starts", journal.resumed.len()));
    }
    if first.is_some() {
        return Err(format!("the first start found a checkpoint on a fresh disk: {first:?}"));
    }
    for restart in restarts {
        match restart {
            Some((at, step)) if *at >= 1 && *step == u64::from(*at) * 16 => {}
            other => return Err(format!("a restart did not resume from an epoch checkpoint: {other:?}")),
        }
    }
    // No link is cut here: every call of the restarted Tolaria must be answered
    // (a replayed nonce from its previous life would be refused).
    if counters.tamiyo_evaluations_total == 0 || counters.hook_errors_total + counters.timeout_tamiyo_total > 0 {
        return Err(format!("Tamiyo did not answer the restarted Tolaria cleanly: {counters:?}"));
    }
    if *epoch != EPOCHS {
        return Err(format!("training ended at epoch {epoch}, not {EPOCHS}"));
    }
    Ok(Some((snapshot.clone(), journal.decisions.clone())))
}

/// The parameters an uninterrupted run reaches: the same data, initial model and
/// Tamiyo decisions, the same trainer and seed manager, on a disk of its own.
async fn unbroken_run(decisions: Decisions, disk: esper_sim::SimDisk, rng: &RngTree) -> Result<Vec<u8>, String> {
    let mut trainer = trainer(Replayed(decisions), disk, rng)?;
    trainer.run(EPOCHS).await.map_err(|e| e.to_string())?;
    let counters = trainer.counters();
    if counters.hook_errors_total > 0 {
        return Err(format!("the uninterrupted run met a step no life recorded a decision for: {counters:?}"));
    }
    trainer.snapshot().map_err(|e| e.to_string())
}
