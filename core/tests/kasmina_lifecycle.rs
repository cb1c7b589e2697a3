//! Kasmina's lifecycle under arbitrary command sequences: every transition it makes is
//! legal, every refusal leaves the seeds untouched and is counted.

use std::collections::BTreeMap;

use esper_core::kasmina::lifecycle::{check, successors};
use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{
    AdaptationCommand, CommandPayload, CommandSeedOperation, CommandType, SeedLifecycleStage as Stage, SeedOperation,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Germinate {
        seed: u8,
        blueprint: bool,
        finite: bool,
    },
    Cull {
        seed: u8,
    },
    Other {
        operation: SeedOperation,
        seed: u8,
    },
    Pause,
    Steps(u8),
    /// A host↔seed gradient leak reported for a seed (non-strict: counted, gates fail).
    Leak {
        seed: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, prop::bool::weighted(0.9), prop::bool::weighted(0.95))
            .prop_map(|(seed, blueprint, finite)| Op::Germinate { seed, blueprint, finite }),
        2 => (0u8..5).prop_map(|seed| Op::Cull { seed }),
        1 => (prop::sample::select(SeedOperation::ALL.to_vec()), 0u8..4).prop_map(|(operation, seed)| Op::Other { operation, seed }),
        1 => Just(Op::Pause),
        4 => (1u8..40).prop_map(Op::Steps),
        1 => (0u8..4).prop_map(|seed| Op::Leak { seed }),
    ]
}

fn seed_command(operation: SeedOperation, seed: u8, blueprint: &str, value: f32) -> AdaptationCommand {
    AdaptationCommand {
        command_id: format!("cmd-{seed}"),
        command_type: CommandType::Seed.into(),
        target_seed_id: format!("seed-{seed}"),
        payload: Some(CommandPayload::SeedOperation(CommandSeedOperation {
            operation: operation.into(),
            blueprint_id: blueprint.to_owned(),
            parameters: [("alpha".to_owned(), value)].into(),
        })),
        ..AdaptationCommand::default()
    }
}

fn stages(manager: &SeedManager) -> BTreeMap<String, Stage> {
    manager.states().into_iter().map(|s| (s.seed_id, Stage::try_from(s.stage).expect("known stage"))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_reached_stage_is_reached_by_legal_transitions(ops in prop::collection::vec(op(), 1..60)) {
        let config = KasminaConfig { training_steps: 3, probation_steps: 3, embargo_steps: 5, ..KasminaConfig::default() };
        let mut manager = SeedManager::new(config);
        let mut path: BTreeMap<String, Stage> = BTreeMap::new();
        let mut rejected = 0;
        for op in ops {
            let before = stages(&manager);
            let result = match &op {
                Op::Germinate { seed, blueprint, finite } => {
                    let value = if *finite { 0.1 } else { f32::NAN };
                    manager.apply(&seed_command(SeedOperation::Germinate, *seed, if *blueprint { "BP001" } else { "" }, value))
                }
                Op::Cull { seed } => manager.apply(&seed_command(SeedOperation::Cull, *seed, "", 0.0)),
                Op::Other { operation, seed } => manager.apply(&seed_command(*operation, *seed, "BP001", 0.0)),
                Op::Pause => manager.apply(&AdaptationCommand { command_type: CommandType::Pause.into(), ..Default::default() }),
                Op::Leak { seed } => {
                    let leak = manager.check_isolation(&format!("seed-{seed}"), &[1.0, 0.0], &[0.5, 1.0]);
                    prop_assert!(leak.is_ok() || manager.stage(&format!("seed-{seed}")).is_none(), "{:?}", leak);
                    Ok(())
                }
                Op::Steps(n) => {
                    (0..*n).for_each(|_| manager.advance());
                    Ok(())
                }
            };
            if result.is_err() {
                rejected += 1;
                prop_assert_eq!(&stages(&manager), &before, "a refused command changed seeds: {:?}", op);
            }
            // Replay the transitions Kasmina announced and check each against the table.
            for event in manager.take_events().iter().filter(|e| e.description == "seed_stage") {
                let seed = event.attributes["seed"].clone();
                let to = Stage::ALL.iter().copied().find(|s| s.as_str_name() == event.attributes["stage"]).expect("stage name");
                let from = path.get(&seed).copied().unwrap_or(Stage::Unknown);
                prop_assert!(check(from, to).is_ok(), "{} went {} -> {} after {:?}", seed, from, to, op);
                path.insert(seed, to);
            }
            prop_assert_eq!(&path, &stages(&manager), "announced transitions must add up to the state");
        }
        prop_assert_eq!(manager.counters().commands_rejected, rejected);
    }
}

#[test]
fn a_germinated_seed_walks_the_whole_lifecycle_and_illegal_commands_are_refused() {
    let config = KasminaConfig { training_steps: 2, probation_steps: 2, embargo_steps: 2, ..KasminaConfig::default() };
    let mut manager = SeedManager::new(config);
    manager.apply(&seed_command(SeedOperation::Germinate, 1, "BP001", 0.1)).expect("germinates");
    let mut seen = vec![manager.stage("seed-1").expect("held")];
    for _ in 0..40 {
        manager.advance();
        let stage = manager.stage("seed-1").expect("held");
        if seen.last() != Some(&stage) {
            seen.push(stage);
        }
    }
    use Stage::*;
    assert_eq!(seen, [Germinated, Training, Blending, Shadowing, Probationary, Fossilized]);
    assert!(seen.windows(2).all(|w| successors(w[0]).contains(&w[1])));
    let err = manager.apply(&seed_command(SeedOperation::Germinate, 1, "BP001", 0.1)).expect_err("fossilized");
    assert_eq!(err.to_string(), "seed lifecycle cannot go from SEED_STAGE_FOSSILIZED to SEED_STAGE_GERMINATED");
    assert!(manager.apply(&seed_command(SeedOperation::Cull, 9, "", 0.0)).is_err(), "unknown seed");
    assert_eq!(manager.counters().commands_rejected, 2);
    assert!(manager.take_events().iter().any(|e| e.description == "command_rejected"));
}
