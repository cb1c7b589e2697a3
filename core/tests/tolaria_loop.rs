//! Tolaria's training loop on the synthetic device, under tokio's paused clock:
//! timeouts, conservative mode, rollback, the emergency ladder, checkpoint resume.
//!
//! The collaborators here are small stand-ins that record what they are sent; the
//! stalling Tamiyo counts its own stalls so the test compares two independent counts.

#[path = "../../tests/support/runtime.rs"]
mod runtime;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::{
    AdaptationCommand, CommandType, EmergencyLevel, SeedState, SystemStatePacket, TELEMETRY_BYTE_LIMIT, TelemetryPacket,
};
use esper_core::tolaria::device::{Dataset, ModelSpec, Synthetic};
use esper_core::tolaria::ports::{KasminaPort, Outbox, PortError, TamiyoPort};
use esper_core::tolaria::{
    Checkpoint, CheckpointError, CheckpointStore, Collaborators, EpochFailure, RollbackOutcome, StepPace, Trainer,
    TrainingLoopConfig,
};
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Answers every call with a no-op optimizer command, except every `stall_every`-th
/// call, which it never answers (Tolaria's timeout must fire).
#[derive(Debug, Default)]
struct StallingTamiyo {
    stall_every: Option<u64>,
    calls: u64,
    stalls: u64,
}

impl TamiyoPort for StallingTamiyo {
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError> {
        self.calls += 1;
        if self.stall_every.is_some_and(|n| self.calls % n == 0) {
            self.stalls += 1;
            std::future::pending::<()>().await;
        }
        Ok(AdaptationCommand {
            command_id: format!("cmd-{}", packet.global_step),
            command_type: CommandType::Optimizer.into(),
            ..AdaptationCommand::default()
        })
    }
}

#[derive(Debug, Default)]
struct RecordingKasmina {
    applied: Vec<AdaptationCommand>,
    finalized: u64,
}

impl KasminaPort for RecordingKasmina {
    async fn apply_command(&mut self, command: &AdaptationCommand) -> Result<(), PortError> {
        self.applied.push(command.clone());
        Ok(())
    }

    fn seed_states(&self) -> Vec<SeedState> {
        Vec::new()
    }

    fn finalize_step(&mut self, _global_step: u64) {
        self.finalized += 1;
    }
}

/// Checkpoints in memory that outlive a trainer (shared), with an optional read
/// delay, and an optional stall: the clock jumps while the read runs, as on a
/// thread that got no CPU, with no timer run in between.
#[derive(Debug, Clone, Default)]
struct SharedCheckpoints {
    latest: Rc<RefCell<Option<Vec<u8>>>>,
    read_delay: Duration,
    read_stall: Duration,
}

impl CheckpointStore for SharedCheckpoints {
    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        *self.latest.borrow_mut() = Some(checkpoint.encode()?);
        Ok(())
    }

    async fn load_latest(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        tokio::time::sleep(self.read_delay).await;
        if !self.read_stall.is_zero() {
            tokio::time::advance(self.read_stall).await;
        }
        let bytes = self.latest.borrow().clone();
        bytes.map(|b| Checkpoint::decode(&b)).transpose()
    }
}

type TestTrainer = Trainer<(StallingTamiyo, RecordingKasmina, Outbox, Outbox, SharedCheckpoints)>;

fn config() -> TrainingLoopConfig {
    TrainingLoopConfig {
        run_id: "run-test".into(),
        step_timeout: Duration::from_millis(500),
        step_cost: Duration::from_millis(1),
        ..TrainingLoopConfig::default()
    }
}

fn dataset() -> Dataset {
    Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42))
}

fn trainer(config: TrainingLoopConfig, data: Dataset, tamiyo: StallingTamiyo, store: SharedCheckpoints) -> TestTrainer {
    let device = Box::new(Synthetic::new(ModelSpec::rc1(), &mut ChaCha8Rng::seed_from_u64(7)));
    let peers = Collaborators {
        tamiyo,
        kasmina: RecordingKasmina::default(),
        telemetry: Outbox::default(),
        emergency: Outbox::default(),
    };
    Trainer::new(config, device, data, peers, store, UnixClock::anchored_at(1_767_225_600_000)).expect("valid trainer")
}

fn event_names(packets: &[TelemetryPacket]) -> Vec<&str> {
    packets.iter().flat_map(|p| &p.events).map(|e| e.description.as_str()).collect()
}

#[test]
fn three_epochs_lower_the_loss_with_tamiyo_at_every_step_and_telemetry_in_budget() {
    let reports = runtime::block_on(async {
        let mut trainer = trainer(config(), dataset(), StallingTamiyo::default(), SharedCheckpoints::default());
        let reports = trainer.run(3).await.expect("runs");
        let peers = trainer.collaborators();
        assert_eq!(peers.tamiyo.calls, 48, "Tamiyo is consulted at every optimizer step");
        assert_eq!(peers.kasmina.applied.len(), 48);
        assert_eq!(peers.kasmina.finalized, 48);
        assert_eq!(
            peers.telemetry.telemetry.len(),
            6,
            "two parts per quiet epoch (the split builder: counters then Tamiyo evaluations)"
        );
        for packet in &peers.telemetry.telemetry {
            assert!(packet.encoded_len() <= TELEMETRY_BYTE_LIMIT, "{} bytes", packet.encoded_len());
        }
        // Each epoch's parts together carry the headline metrics (which part holds
        // which is the builder's packet plan, not this test's concern).
        for epoch in peers.telemetry.telemetry.chunks(2) {
            assert_eq!(epoch.iter().map(|p| (p.part, p.parts)).collect::<Vec<_>>(), [(1, 2), (2, 2)], "{epoch:?}");
            for name in ["tolaria.training.loss", "tolaria.training.latency_ms", "slo.tolaria_latency_objective"] {
                assert!(epoch.iter().any(|packet| packet.metric(name).is_some()), "{name} missing from {epoch:?}");
            }
        }
        reports
    });
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r.failure.is_none() && r.steps == 16), "{reports:?}");
    assert!(
        reports[2].loss < reports[0].loss,
        "loss must fall: {:?}",
        reports.iter().map(|r| r.loss).collect::<Vec<_>>()
    );
    // 16 steps at 1 ms of virtual step cost each: the epoch latency is virtual time.
    assert!((16.0..20.0).contains(&reports[0].latency_ms), "latency {}", reports[0].latency_ms);
}

#[test]
fn tamiyo_timeouts_are_counted_exactly_as_often_as_tamiyo_stalled() {
    for stall_every in [2, 5, 7, 20] {
        runtime::block_on(async {
            let tamiyo = StallingTamiyo { stall_every: Some(stall_every), ..StallingTamiyo::default() };
            let mut trainer = trainer(config(), dataset(), tamiyo, SharedCheckpoints::default());
            let reports = trainer.run(6).await.expect("runs");
            let stalls = trainer.collaborators().tamiyo.stalls;
            assert!(stalls > 0, "stall every {stall_every}: the drill must inject at least one stall");
            assert_eq!(trainer.counters().timeout_tamiyo_total, stalls, "stall every {stall_every}");
            // A stall costs the 500 ms step timeout, so that epoch blows its 250 ms budget,
            // and Tolaria stays conservative (Tamiyo skipped) until an epoch ends well.
            let failed: Vec<_> = reports.iter().filter(|r| r.failure == Some(EpochFailure::EpochBudget)).collect();
            assert_eq!(failed.len() as u64, stalls, "one failed epoch per stall");
            let events: usize = trainer
                .collaborators()
                .telemetry
                .telemetry
                .iter()
                .flat_map(|p| &p.events)
                .filter(|e| e.description == "tolaria.tamiyo_timeout")
                .count();
            assert_eq!(events as u64, stalls, "one tolaria.tamiyo_timeout event per stall");
        });
    }
}

/// The dataset with sample `index`'s inputs replaced by NaN, and the same dataset
/// without the batch holding that sample.
fn poisoned_and_skipped(index: usize) -> (Dataset, Dataset) {
    let whole = dataset().whole();
    let mut poisoned = whole.inputs.clone();
    poisoned[index * 4..index * 4 + 4].fill(f32::NAN);
    let batch = index / 4;
    let keep = |i: &usize| i / 4 != batch;
    let skipped_inputs: Vec<f32> = (0..64).filter(keep).flat_map(|i| whole.inputs[i * 4..i * 4 + 4].to_vec()).collect();
    let skipped_targets: Vec<u32> = (0..64).filter(keep).map(|i| whole.targets[i]).collect();
    (
        Dataset::from_samples(4, poisoned, whole.targets.clone()).expect("same shape"),
        Dataset::from_samples(4, skipped_inputs, skipped_targets).expect("whole batches removed"),
    )
}

#[test]
fn divergence_rolls_back_to_the_exact_pre_fault_parameters() {
    let (poisoned, skipped) = poisoned_and_skipped(21);
    let (rolled_back, clean) = runtime::block_on(async {
        let mut faulty = trainer(config(), poisoned, StallingTamiyo::default(), SharedCheckpoints::default());
        let report = faulty.run_epoch().await.expect("runs");
        assert_eq!(report.failure, Some(EpochFailure::StepFailure), "divergence fails the epoch");
        assert_eq!(faulty.counters().rollback_fast_hits_total, 1);
        assert!(event_names(&report.telemetry).contains(&"tolaria.divergence"));
        let mut reference = trainer(config(), skipped, StallingTamiyo::default(), SharedCheckpoints::default());
        reference.run_epoch().await.expect("runs");
        (faulty.snapshot().expect("snapshot"), reference.snapshot().expect("snapshot"))
    });
    // The poisoned step was undone byte for byte: training on without it is the same
    // as never having seen that batch.
    assert_eq!(rolled_back, clean);
}

#[test]
fn rollback_past_its_deadline_counts_once_and_halts_with_an_emergency_signal() {
    let (poisoned, _) = poisoned_and_skipped(5);
    runtime::block_on(async {
        // No fast tier (0 bytes), and a checkpoint that takes longer than the deadline.
        let config = TrainingLoopConfig { rollback_fast_cap_bytes: 0, ..config() };
        let store = SharedCheckpoints { read_delay: Duration::from_millis(400), ..SharedCheckpoints::default() };
        let mut trainer = trainer(config, poisoned, StallingTamiyo::default(), store);
        let report = trainer.run_epoch().await.expect("runs");
        let counters = trainer.counters();
        assert_eq!(counters.rollback_deadline_exceeded_total, 1);
        assert_eq!(counters.rollback_fast_misses_total, 1);
        assert!(report.halted, "L4 on rollback deadline");
        let signals = &trainer.collaborators().emergency.signals;
        assert_eq!(signals.len(), 1, "{signals:?}");
        assert_eq!((signals[0].level, signals[0].reason.as_str()), (EmergencyLevel::Halt as i32, "rollback_deadline"));
        let names = event_names(&report.telemetry);
        assert!(report.telemetry.iter().all(|p| p.encoded_len() <= TELEMETRY_BYTE_LIMIT));
        for expected in ["tolaria.rollback.restore_failed", "tolaria.emergency.escalated", "tolaria.emergency.halt"] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        assert!(trainer.run_epoch().await.is_err(), "a halted trainer refuses to train");
        assert_eq!(trainer.last_restore_latency_ms(), 250.0, "gave up exactly at the deadline");
    });
}

/// The real profile on a loaded machine: the thread wakes long after both the
/// read and the deadline fell due, and `timeout` polls the read first, so it
/// comes back as a success 400 ms into a 250 ms deadline. It still ran past it.
#[test]
fn a_checkpoint_that_lands_after_the_deadline_in_one_wake_up_is_a_deadline_miss() {
    runtime::block_on(async {
        let store = SharedCheckpoints { read_stall: Duration::from_millis(400), ..SharedCheckpoints::default() };
        let config = TrainingLoopConfig { rollback_fast_cap_bytes: 0, ..config() };
        let mut trainer = trainer(config, dataset(), StallingTamiyo::default(), store);
        trainer.run_epoch().await.expect("runs");
        assert_eq!(trainer.rollback_to(0).await, RollbackOutcome::DeadlineExceeded);
        assert_eq!(trainer.counters().rollback_deadline_exceeded_total, 1);
        assert_eq!(trainer.last_restore_latency_ms(), 400.0);
    });
}

#[test]
fn a_checkpoint_restore_inside_the_deadline_is_not_a_deadline_miss() {
    runtime::block_on(async {
        let store = SharedCheckpoints { read_delay: Duration::from_millis(12), ..SharedCheckpoints::default() };
        let config = TrainingLoopConfig { rollback_fast_cap_bytes: 0, ..config() };
        let mut trainer = trainer(config, dataset(), StallingTamiyo::default(), store);
        trainer.run_epoch().await.expect("runs");
        let after_epoch = trainer.snapshot().expect("snapshot");
        trainer.run_epoch().await.expect("runs");
        let outcome = trainer.rollback_to(16).await;
        assert_eq!(outcome, RollbackOutcome::Checkpoint { epoch: 2, step: 32 }, "only the latest checkpoint is kept");
        assert_ne!(trainer.snapshot().expect("snapshot"), after_epoch);
        assert_eq!(trainer.counters().rollback_deadline_exceeded_total, 0);
        assert_eq!(trainer.last_restore_latency_ms(), 12.0);
    });
}

#[test]
fn a_crash_mid_epoch_resumes_from_the_checkpoint_and_ends_where_an_unbroken_run_ends() {
    let (resumed, unbroken) = runtime::block_on(async {
        let store = SharedCheckpoints::default();
        let mut first = trainer(config(), dataset(), StallingTamiyo::default(), store.clone());
        first.run(2).await.expect("two epochs");
        // Crash: the third epoch is cut off after 5 ms of its ~16 ms.
        let cut = tokio::time::timeout(Duration::from_millis(5), first.run_epoch()).await;
        assert!(cut.is_err(), "the epoch must be interrupted mid-way");
        drop(first);

        let mut second = trainer(config(), dataset(), StallingTamiyo::default(), store);
        assert_eq!(second.resume().await.expect("resumes"), Some((2, 32)));
        second.run(3).await.expect("finishes");
        assert_eq!((second.epoch(), second.global_step()), (3, 48));

        let mut unbroken = trainer(config(), dataset(), StallingTamiyo::default(), SharedCheckpoints::default());
        unbroken.run(3).await.expect("three epochs");
        (second.snapshot().expect("snapshot"), unbroken.snapshot().expect("snapshot"))
    });
    assert_eq!(resumed, unbroken, "resume must continue exactly where the checkpoint left off");
}

#[test]
fn a_failed_epoch_rolls_back_to_its_start_only_when_rollback_is_enabled() {
    for rollback_enabled in [true, false] {
        runtime::block_on(async {
            // Tamiyo's 20th call (epoch 2, step 4) stalls: epoch 2 blows its budget.
            let tamiyo = StallingTamiyo { stall_every: Some(20), ..StallingTamiyo::default() };
            let config = TrainingLoopConfig { rollback_enabled, ..config() };
            let mut trainer = trainer(config, dataset(), tamiyo, SharedCheckpoints::default());
            trainer.run_epoch().await.expect("runs");
            let after_first = trainer.snapshot().expect("snapshot");
            let second = trainer.run_epoch().await.expect("runs");
            assert_eq!(second.failure, Some(EpochFailure::EpochBudget));
            let rolled_back = trainer.snapshot().expect("snapshot") == after_first;
            assert_eq!(rolled_back, rollback_enabled, "rollback_enabled={rollback_enabled}");
            assert_eq!(trainer.counters().rollback_fast_hits_total, u64::from(rollback_enabled));
        });
    }
}

/// A throttled device stretches every epoch past its budget (16 steps of 1 ms at
/// 2000 % take 320 ms > 250 ms), and each failed epoch rolls back to its own
/// start — also the second in a row, whose start is the state the first one was
/// rolled back to, not the state that epoch ended in.
#[test]
fn a_throttled_device_fails_epochs_in_a_row_and_each_rolls_back_to_its_own_start() {
    runtime::block_on(async {
        let pace = StepPace::default();
        let config = TrainingLoopConfig { rollback_enabled: true, ..config() };
        let store = SharedCheckpoints::default();
        let mut trainer = trainer(config, dataset(), StallingTamiyo::default(), store).with_pace(pace.clone());
        let nominal = trainer.run_epoch().await.expect("runs");
        assert_eq!(nominal.failure, None, "{} ms at the nominal pace", nominal.latency_ms);
        pace.set_percent(2_000);
        let start = trainer.snapshot().expect("snapshot");
        for _ in 0..3 {
            let report = trainer.run_epoch().await.expect("runs");
            assert_eq!(report.failure, Some(EpochFailure::EpochBudget), "{} ms", report.latency_ms);
            assert!(report.latency_ms >= 320.0, "the throttle must reach the step cost: {} ms", report.latency_ms);
            assert!(trainer.snapshot().expect("snapshot") == start, "epoch {} rolled back elsewhere", report.epoch);
        }
        assert_eq!(trainer.counters().rollback_fast_hits_total, 3);
    });
}
