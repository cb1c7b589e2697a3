//! Kasmina's seeds grafted into the model Tolaria trains: a germinated seed gets
//! real parameters on the device, trains, blends in and fossilizes into the host;
//! a culled one is dropped; a kernel that does not fit the slot is refused once; a
//! restarted Tolaria resumes its seeds from the checkpoint.

#[path = "../../tests/support/runtime.rs"]
mod runtime;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::SeedState;
use esper_core::leyline::{
    AdaptationCommand, CommandPayload, CommandSeedOperation, CommandType, SeedOperation, SystemStatePacket,
    TelemetryPacket,
};
use esper_core::tolaria::device::SeedGraft;
use esper_core::tolaria::device::{Dataset, GraftStage, ModelSpec, ModelState, Synthetic};
use esper_core::tolaria::ports::{KasminaPort, Outbox, PortError, TamiyoPort};
use esper_core::tolaria::{Checkpoint, CheckpointError, CheckpointStore, Collaborators, Trainer, TrainingLoopConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Sends each scripted command at its global step, a pause otherwise.
#[derive(Debug, Default)]
struct ScriptedTamiyo {
    script: Vec<(u64, AdaptationCommand)>,
}

impl TamiyoPort for ScriptedTamiyo {
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError> {
        let scripted = self.script.iter().find(|(step, _)| *step == packet.global_step);
        let pause = AdaptationCommand { command_type: CommandType::Pause.into(), ..AdaptationCommand::default() };
        Ok(scripted.map_or(pause, |(_, command)| command.clone()))
    }
}

/// Checkpoints kept in memory, encoded and decoded as on disk; clones share the shelf,
/// so a second trainer (a restarted Tolaria) finds what the first one saved.
#[derive(Debug, Default, Clone)]
struct Shelf(Rc<RefCell<Option<Vec<u8>>>>);

impl CheckpointStore for Shelf {
    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        *self.0.borrow_mut() = Some(checkpoint.encode()?);
        Ok(())
    }

    async fn load_latest(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        self.0.borrow().as_deref().map(Checkpoint::decode).transpose()
    }
}

type Loop<K = SeedManager> = Trainer<(ScriptedTamiyo, K, Outbox, Outbox, Shelf)>;

fn seed_command(operation: SeedOperation, blueprint: &str) -> AdaptationCommand {
    AdaptationCommand {
        command_id: format!("cmd-{}", operation.as_str_name()),
        command_type: CommandType::Seed.into(),
        target_seed_id: "seed-1".to_owned(),
        payload: Some(CommandPayload::SeedOperation(CommandSeedOperation {
            operation: operation.into(),
            blueprint_id: blueprint.to_owned(),
            parameters: Default::default(),
        })),
        ..AdaptationCommand::default()
    }
}

fn control_loop(script: Vec<(u64, AdaptationCommand)>) -> Loop {
    control_loop_with(script, SeedManager::new(KasminaConfig::default()), Shelf::default())
}

fn control_loop_with<K: KasminaPort>(script: Vec<(u64, AdaptationCommand)>, kasmina: K, shelf: Shelf) -> Loop<K> {
    let clock = UnixClock::anchored_at(1_767_225_600_000);
    let peers = Collaborators {
        tamiyo: ScriptedTamiyo { script },
        kasmina,
        telemetry: Outbox::default(),
        emergency: Outbox::default(),
    };
    let config = TrainingLoopConfig {
        run_id: "run-graft".into(),
        step_timeout: Duration::from_millis(500),
        step_cost: Duration::from_millis(1),
        ..TrainingLoopConfig::default()
    };
    let device = Box::new(Synthetic::new(ModelSpec::mlp(), &mut ChaCha8Rng::seed_from_u64(7)));
    let data = Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42));
    Trainer::new(config, device, data, peers, shelf, clock).expect("valid trainer")
}

/// Runs `epochs` and returns the trainer, the model state and the Tolaria event names.
fn run(script: Vec<(u64, AdaptationCommand)>, epochs: u32) -> (Loop, ModelState, Vec<String>) {
    let runtime = runtime::paused();
    let mut trainer = control_loop(script);
    let reports = runtime.block_on(trainer.run(epochs)).expect("runs");
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    let state = ModelState::decode(&trainer.snapshot().expect("snapshot"), &ModelSpec::mlp()).expect("decodes");
    let events = events(&trainer.collaborators().telemetry.telemetry);
    (trainer, state, events)
}

fn events(packets: &[TelemetryPacket]) -> Vec<String> {
    let events = packets.iter().flat_map(|packet| &packet.events);
    events.map(|event| event.description.clone()).filter(|name| name.starts_with("tolaria.")).collect()
}

#[test]
fn a_germinated_seed_is_grafted_blended_and_fossilized_into_the_host() {
    let (trainer, state, events) = run(vec![(1, seed_command(SeedOperation::Germinate, "BP002"))], 4);
    assert_eq!(events.iter().filter(|name| *name == "tolaria.seed_grafted").count(), 1, "{events:?}");
    assert_eq!(state.seeds.len(), 1);
    let seed = &state.seeds[0];
    assert_eq!((seed.seed_id.as_str(), seed.slot.as_str(), seed.stage), ("seed-1", "hidden", GraftStage::Fossilized));
    assert_eq!(seed.alpha, 1.0, "fossilized after a complete blend");
    let (_, plain, _) = run(Vec::new(), 4);
    assert_ne!(state.hidden, plain.hidden, "a fossil learns with the host and changes what the host learns");
    let kasmina = trainer.collaborators().kasmina.grafts();
    assert_eq!(kasmina[0].stage, GraftStage::Fossilized);
}

#[test]
fn a_culled_seed_is_dropped_and_the_host_learns_as_if_it_never_was() {
    let script =
        vec![(1, seed_command(SeedOperation::Germinate, "BP002")), (12, seed_command(SeedOperation::Cull, ""))];
    let (_, state, events) = run(script, 2);
    assert!(events.contains(&"tolaria.seed_dropped".to_owned()), "{events:?}");
    assert!(state.seeds.is_empty());
    let (_, plain, _) = run(Vec::new(), 2);
    assert_eq!(state, plain, "a live seed never touched the host, and nothing of it is left");
}

#[test]
fn a_kernel_that_does_not_fit_the_slot_is_refused_once() {
    let (_, state, events) = run(vec![(1, seed_command(SeedOperation::Germinate, "BP003"))], 2);
    assert_eq!(events.iter().filter(|name| *name == "tolaria.graft_refused").count(), 1, "{events:?}");
    assert!(state.seeds.is_empty());
}

/// A Kasmina that forgets its seeds at a restart, as every Kasmina did before the
/// checkpoint carried its plan: it accepts a saved plan and keeps nothing of it.
struct Amnesiac(SeedManager);

impl KasminaPort for Amnesiac {
    async fn apply_command(&mut self, command: &AdaptationCommand) -> Result<(), PortError> {
        self.0.apply_command(command).await
    }

    fn seed_states(&self) -> Vec<SeedState> {
        self.0.states()
    }

    fn finalize_step(&mut self, global_step: u64) {
        KasminaPort::finalize_step(&mut self.0, global_step);
    }

    fn grafts(&self) -> Vec<SeedGraft> {
        self.0.grafts()
    }

    fn plan(&self) -> Result<Vec<u8>, PortError> {
        self.0.plan()
    }

    fn restore_plan(&mut self, _: &[u8]) -> Result<(), PortError> {
        Ok(())
    }
}

/// Trains 2 epochs with a seed germinated at step 1 (still TRAINING or BLENDING at the
/// epoch-2 checkpoint), drops that trainer (a crash), and resumes a fresh one on the
/// same checkpoints with `kasmina` to the end of epoch 4.
fn crash_and_resume<K: KasminaPort>(kasmina: K) -> ModelState {
    let runtime = runtime::paused();
    let script = || vec![(1, seed_command(SeedOperation::Germinate, "BP002"))];
    let shelf = Shelf::default();
    let mut first = control_loop_with(script(), SeedManager::new(KasminaConfig::default()), shelf.clone());
    runtime.block_on(first.run(2)).expect("first life runs");
    drop(first);
    let mut second = control_loop_with(script(), kasmina, shelf);
    assert_eq!(runtime.block_on(second.resume()).expect("resumes"), Some((2, 32)));
    runtime.block_on(second.run(4)).expect("second life runs");
    ModelState::decode(&second.snapshot().expect("snapshot"), &ModelSpec::mlp()).expect("decodes")
}

#[test]
fn a_restarted_tolaria_resumes_its_seeds_where_they_stood() {
    let (_, unbroken, _) = run(vec![(1, seed_command(SeedOperation::Germinate, "BP002"))], 4);
    let resumed = crash_and_resume(SeedManager::new(KasminaConfig::default()));
    assert_eq!(resumed, unbroken, "seed weights, stage and alpha resume from the checkpoint");
    assert_eq!(resumed.seeds[0].stage, GraftStage::Fossilized);
}

#[test]
fn a_kasmina_that_forgets_its_plan_changes_the_resumed_model() {
    let (_, unbroken, _) = run(vec![(1, seed_command(SeedOperation::Germinate, "BP002"))], 4);
    let forgetful = crash_and_resume(Amnesiac(SeedManager::new(KasminaConfig::default())));
    assert!(forgetful.seeds.is_empty(), "the first graft sync drops seeds Kasmina does not know: {forgetful:?}");
    assert_ne!(forgetful, unbroken);
}

/// A stand-in Kasmina with no seeds of its own, keeping no plan (the port's defaults).
struct NoSeeds;

impl KasminaPort for NoSeeds {
    async fn apply_command(&mut self, _: &AdaptationCommand) -> Result<(), PortError> {
        Ok(())
    }

    fn seed_states(&self) -> Vec<SeedState> {
        Vec::new()
    }

    fn finalize_step(&mut self, _: u64) {}
}

#[test]
fn a_kasmina_that_keeps_no_plan_refuses_a_checkpoint_with_seeds() {
    let runtime = runtime::paused();
    let shelf = Shelf::default();
    let script = vec![(1, seed_command(SeedOperation::Germinate, "BP002"))];
    let mut first = control_loop_with(script, SeedManager::new(KasminaConfig::default()), shelf.clone());
    runtime.block_on(first.run(2)).expect("first life runs");
    let mut second = control_loop_with(Vec::new(), NoSeeds, shelf);
    let error = runtime.block_on(second.resume()).expect_err("a plan with seeds cannot be dropped silently");
    assert!(error.to_string().contains("keeps no seed plan"), "{error}");
}
