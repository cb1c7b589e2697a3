//! The real Tamiyo in Tolaria's loop, with Kasmina's seed manager: every step
//! consulted, every command reported, and a plateau grown into a seed that Kasmina
//! walks through its lifecycle.

#[path = "../../tests/support/runtime.rs"]
mod runtime;

mod tamiyo_support;

use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{FieldReportOutcome, SeedLifecycleStage};
use esper_core::tamiyo::{BlueprintCatalog, MemoryFieldReportSink, TamiyoConfig, TamiyoService};
use esper_core::tolaria::device::{Dataset, ModelSpec, Synthetic};
use esper_core::tolaria::ports::Outbox;
use esper_core::tolaria::{Checkpoint, CheckpointError, CheckpointStore, Collaborators, Trainer, TrainingLoopConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tamiyo_support::NOW_MS;

/// Counts checkpoints; this test does not restore.
#[derive(Debug, Default)]
struct CountedCheckpoints {
    checkpoints: u32,
}

impl CheckpointStore for CountedCheckpoints {
    async fn save(&mut self, _: &Checkpoint) -> Result<(), CheckpointError> {
        self.checkpoints += 1;
        Ok(())
    }

    async fn load_latest(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        Ok(None)
    }
}

type Loop =
    Trainer<(TamiyoService<BlueprintCatalog, MemoryFieldReportSink>, SeedManager, Outbox, Outbox, CountedCheckpoints)>;

fn control_loop() -> Loop {
    let clock = UnixClock::anchored_at(NOW_MS);
    let tamiyo = TamiyoService::new(
        TamiyoConfig::default(),
        BlueprintCatalog::karn(),
        MemoryFieldReportSink::default(),
        clock,
        ChaCha8Rng::seed_from_u64(11),
    );
    let peers = Collaborators {
        tamiyo,
        kasmina: SeedManager::new(KasminaConfig::default()),
        telemetry: Outbox::default(),
        emergency: Outbox::default(),
    };
    let config = TrainingLoopConfig {
        run_id: "run-loop".into(),
        step_timeout: Duration::from_millis(500),
        step_cost: Duration::from_millis(1),
        ..TrainingLoopConfig::default()
    };
    let device = Box::new(Synthetic::new(ModelSpec::rc1(), &mut ChaCha8Rng::seed_from_u64(7)));
    let data = Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42));
    Trainer::new(config, device, data, peers, CountedCheckpoints::default(), clock).expect("valid trainer")
}

#[test]
fn tamiyo_decides_every_step_and_the_loss_still_falls() {
    runtime::block_on(async {
        let mut trainer = control_loop();
        let reports = trainer.run(3).await.expect("runs");
        assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
        assert!(reports[2].loss < reports[0].loss, "{:?}", reports.iter().map(|r| r.loss).collect::<Vec<_>>());
        assert_eq!(trainer.counters().timeout_tamiyo_total, 0);
        let tamiyo = &trainer.collaborators().tamiyo;
        assert_eq!(tamiyo.counters().evaluations, 48, "16 steps × 3 epochs");
        assert_eq!(tamiyo.sink().reports().len(), 48, "a field report per command");
    });
}

#[test]
fn a_plateau_grows_a_seed_that_kasmina_takes_through_its_lifecycle() {
    runtime::block_on(async {
        let mut trainer = control_loop();
        let epochs = trainer.run(40).await.expect("runs");
        for e in &epochs {
            eprintln!("EPOCH {:?}", e.loss);
        }
        let reports = trainer.collaborators().tamiyo.sink().reports().to_vec();
        for (i, r) in reports.iter().enumerate().filter(|(i, _)| i % 16 == 0 || *i > 600) {
            if i < 700 {
                eprintln!("{i} {:?} {}", r.metrics.get("loss_delta"), r.notes);
            }
        }
        let germinations: Vec<_> = reports.iter().filter(|r| !r.blueprint_id.is_empty()).collect();
        assert!(!germinations.is_empty(), "40 epochs of a 4→2 linear model plateau at least once");
        assert!(germinations.iter().all(|r| r.outcome == i32::from(FieldReportOutcome::Success)));
        let regressions = reports.iter().filter(|r| r.outcome == i32::from(FieldReportOutcome::Regression)).count();
        assert_eq!(regressions, 0, "minibatch noise is not a loss spike");
        let kasmina = &trainer.collaborators().kasmina;
        assert_eq!(kasmina.counters().commands_rejected, 0, "Kasmina accepted every Tamiyo command");
        let stages: Vec<_> = kasmina.states().iter().map(|s| s.stage).collect();
        assert!(
            stages.iter().any(|&s| s == i32::from(SeedLifecycleStage::Fossilized)),
            "the first seed made it to FOSSILIZED: {stages:?}"
        );
        assert_eq!(reports.len() as u64, trainer.collaborators().tamiyo.counters().evaluations);
    });
}
