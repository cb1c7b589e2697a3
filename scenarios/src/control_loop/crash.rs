//! `tolaria-crash`: the Tolaria host crashes mid-epoch and restarts.
//!
//! Tolaria checkpoints to its simulated disk (`StorageCheckpoints`: one CRC-framed
//! record, replaced atomically) at every epoch end. At a seeded moment the host
//! crashes — its software is dropped mid-step and the disk loses whatever was not
//! fsynced — and restarts a little later. The restarted Tolaria resumes from the
//! checkpoint and trains to the end. The `weatherlight` observer then checks that the
//! restart resumed from a real checkpoint and that the final parameters are byte for
//! byte those of an uninterrupted run (Tamiyo's and Kasmina's decisions do not touch
//! the host model, so the trajectory is the data's alone).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::tolaria::device::{Dataset, DeviceKind, ModelSpec};
use esper_core::tolaria::metrics::TolariaCounters;
use esper_core::tolaria::{CHECKPOINT_PATH, Collaborators, StorageCheckpoints, Trainer};
use esper_sim::{
    ClockSkew, Fault, FaultSchedule, Incarnations, RngTree, ScheduledFault, SimDiskConfig, SimScenario, World,
    WorldConfig,
};
use rand::Rng;

use esper_core::tolaria::ports::Outbox;

use super::hosts::{TOLARIA, sim_clock, tamiyo_client, tamiyo_host, training_config};

const OBSERVER: &str = "weatherlight";
const EPOCHS: u32 = 6;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TolariaCrashScenario;

/// What the Tolaria incarnations tell the observer (an oracle outside the system).
#[derive(Debug, Default)]
struct Journal {
    /// Per start of the host: the checkpoint it resumed from, if any.
    resumed: Vec<Option<(u32, u64)>>,
    /// The final parameters and epoch, and the last life's counters, once finished.
    finished: Option<(Vec<u8>, u32, TolariaCounters)>,
    /// The first error a Tolaria incarnation hit.
    error: Option<String>,
}

impl SimScenario for TolariaCrashScenario {
    fn name(&self) -> &'static str {
        "tolaria-crash"
    }

    fn summary(&self) -> &'static str {
        "Tolaria crashes mid-epoch, restarts, resumes from its on-disk checkpoint, ends as an unbroken run"
    }

    fn world_config(&self) -> WorldConfig {
        WorldConfig { max_latency: Duration::from_millis(2), ..WorldConfig::default() }
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("crash");
        let crash_ms = draws.random_range(200..500);
        let restart_ms = crash_ms + draws.random_range(20..100);
        let host = || TOLARIA.to_owned();
        FaultSchedule::new(vec![
            ScheduledFault { at_ms: crash_ms, fault: Fault::Crash { host: host() } },
            ScheduledFault { at_ms: restart_ms, fault: Fault::Restart { host: host() } },
        ])
    }

    fn populate(&self, world: &mut World) {
        tamiyo_host(world);
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
        world.client(OBSERVER, async move { observe(&journal, &rng).await.map_err(Into::into) });
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
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut rng.stream("dataset"));
    let model = DeviceKind::Synthetic.build(spec, &mut rng.stream("model")).map_err(|e| e.to_string())?;
    let clock = sim_clock();
    let peers = Collaborators {
        tamiyo: tamiyo_client(clock, ClockSkew::default(), life)?,
        kasmina: SeedManager::new(KasminaConfig::default()),
        telemetry: Outbox::default(),
        emergency: Outbox::default(),
    };
    let store = StorageCheckpoints::new(disk, CHECKPOINT_PATH);
    let config = training_config("sim-tolaria-crash");
    let mut trainer = Trainer::new(config, model, dataset, peers, store, clock).map_err(|e| e.to_string())?;
    let resumed = trainer.resume().await.map_err(|e| e.to_string())?;
    log.borrow_mut().resumed.push(resumed);
    trainer.run(EPOCHS).await.map_err(|e| e.to_string())?;
    let snapshot = trainer.snapshot().map_err(|e| e.to_string())?;
    log.borrow_mut().finished = Some((snapshot, trainer.epoch(), trainer.counters()));
    Ok(())
}

/// Waits for Tolaria to finish, then checks the resume and the final parameters.
async fn observe(journal: &RefCell<Journal>, rng: &RngTree) -> Result<(), String> {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let journal = journal.borrow();
        if let Some(error) = &journal.error {
            return Err(format!("tolaria failed: {error}"));
        }
        let Some((snapshot, epoch, counters)) = &journal.finished else { continue };
        let [first, second] = journal.resumed.as_slice() else {
            return Err(format!("expected one crash and one restart, saw {} starts", journal.resumed.len()));
        };
        if first.is_some() {
            return Err(format!("the first start found a checkpoint on a fresh disk: {first:?}"));
        }
        match second {
            Some((at, step)) if *at >= 1 && *step == u64::from(*at) * 16 => {}
            other => return Err(format!("the restart did not resume from an epoch checkpoint: {other:?}")),
        }
        // No link is cut here: every call of the restarted Tolaria must be answered
        // (a replayed nonce from its previous life would be refused).
        if counters.tamiyo_evaluations_total == 0 || counters.hook_errors_total + counters.timeout_tamiyo_total > 0 {
            return Err(format!("Tamiyo did not answer the restarted Tolaria cleanly: {counters:?}"));
        }
        if *epoch != EPOCHS {
            return Err(format!("training ended at epoch {epoch}, not {EPOCHS}"));
        }
        return if *snapshot == unbroken_run(rng)? {
            Ok(())
        } else {
            Err("parameters after crash + resume differ from an uninterrupted run".to_owned())
        };
    }
}

/// The parameters an uninterrupted run reaches: the same data, model seed and steps.
fn unbroken_run(rng: &RngTree) -> Result<Vec<u8>, String> {
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut rng.stream("dataset"));
    let mut model = DeviceKind::Synthetic.build(spec, &mut rng.stream("model")).map_err(|e| e.to_string())?;
    for _ in 0..EPOCHS {
        for batch in dataset.batches(training_config("").batch_size) {
            model.train_step(&batch).map_err(|e| e.to_string())?;
        }
    }
    model.snapshot().map_err(|e| e.to_string())
}
