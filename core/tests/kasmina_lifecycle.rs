//! Kasmina's lifecycle under arbitrary command sequences: every transition it makes is
//! legal, every refusal leaves the seeds untouched and is counted; blend changes from
//! Tamiyo-shaped commands move alpha as commanded, and only for BLENDING seeds.

use std::collections::BTreeMap;

use esper_core::kasmina::lifecycle::{check, successors};
use esper_core::kasmina::{KasminaConfig, KasminaError, SeedManager};
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
    /// A Tamiyo-shaped GERMINATE carrying blend parameters (some out of range).
    Blend {
        seed: u8,
        alpha: f32,
        method: f32,
        steps: f32,
    },
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
        2 => (0u8..4, prop::sample::select(vec![0.0f32, 0.3, 1.0, 1.5]), 0u8..4, prop::sample::select(vec![1.0f32, 4.0, 0.0]))
            .prop_map(|(seed, alpha, method, steps)| Op::Blend { seed, alpha, method: f32::from(method), steps }),
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

/// A GERMINATE as Tamiyo's policy writes it, with `blending_steps` added.
fn blend_command(seed: u8, alpha: f32, method: f32, steps: f32) -> AdaptationCommand {
    let mut command = seed_command(SeedOperation::Germinate, seed, "BP001", alpha);
    if let Some(CommandPayload::SeedOperation(op)) = &mut command.payload {
        op.parameters.extend([
            ("blending_method_index".to_owned(), method),
            ("blending_schedule_start".to_owned(), 0.0),
            ("blending_schedule_end".to_owned(), 1.0),
            ("blending_steps".to_owned(), steps),
        ]);
    }
    command
}

/// `kasmina.seed.alpha` of `seed` in the manager's telemetry.
fn alpha_metric(manager: &mut SeedManager, seed: &str) -> f64 {
    let packets = manager.telemetry(0);
    let mut points = packets.iter().flat_map(|p| &p.metrics);
    let point = points.find(|m| m.name == "kasmina.seed.alpha" && m.attributes.get("seed").is_some_and(|s| s == seed));
    point.expect("kasmina.seed.alpha for the seed").value
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
                Op::Blend { seed, alpha, method, steps } => {
                    let id = format!("seed-{seed}");
                    let stage = manager.stage(&id);
                    let result = manager.apply(&blend_command(*seed, *alpha, *method, *steps));
                    let valid = *alpha <= 1.0 && *method <= 2.0 && *steps >= 1.0;
                    match stage {
                        Some(Stage::Blending) => prop_assert_eq!(result.is_ok(), valid, "{:?}", result),
                        Some(Stage::Dormant) | None => {}
                        Some(_) if valid => prop_assert!(matches!(result, Err(KasminaError::BlendRefused { .. })), "{:?}", result),
                        Some(_) => prop_assert!(matches!(result, Err(KasminaError::BadBlend(_))), "{:?}", result),
                    }
                    result
                }
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
    let mut germinate = seed_command(SeedOperation::Germinate, 1, "BP001", 0.1);
    if let Some(CommandPayload::SeedOperation(op)) = &mut germinate.payload {
        op.parameters.clear();
    }
    let err = manager.apply(&germinate).expect_err("fossilized");
    assert_eq!(err.to_string(), "seed lifecycle cannot go from SEED_STAGE_FOSSILIZED to SEED_STAGE_GERMINATED");
    assert!(manager.apply(&seed_command(SeedOperation::Cull, 9, "", 0.0)).is_err(), "unknown seed");
    assert_eq!(manager.counters().commands_rejected, 2);
    assert!(manager.take_events().iter().any(|e| e.description == "command_rejected"));
}

/// A manager holding `seed-1` in BLENDING, `steps` steps in.
fn blending_seed(steps: u32) -> SeedManager {
    let config = KasminaConfig { training_steps: 2, ..KasminaConfig::default() };
    let mut manager = SeedManager::new(config);
    manager.apply(&seed_command(SeedOperation::Germinate, 1, "BP001", 0.1)).expect("germinates");
    (0..3).for_each(|_| manager.advance());
    assert_eq!(manager.stage("seed-1"), Some(Stage::Blending));
    (0..steps).for_each(|_| manager.advance());
    manager
}

#[test]
fn a_tamiyo_blend_change_moves_alpha_as_commanded() {
    let mut manager = blending_seed(10);
    let before = alpha_metric(&mut manager, "seed-1");
    assert!((before - 0.5).abs() < 1e-6, "halfway along the default tanh ramp: {before}");
    // Linear to 0.8 over 4 steps.
    manager.apply(&blend_command(1, 0.8, 0.0, 4.0)).expect("blend change");
    let events = manager.take_events();
    assert!(events.iter().any(|e| e.description == "blend_changed" && e.attributes["target"] == "0.8"), "{events:?}");
    let mut alphas = Vec::new();
    for _ in 0..6 {
        manager.advance();
        alphas.push(alpha_metric(&mut manager, "seed-1"));
    }
    let expected = [0.575, 0.65, 0.725, 0.8, 0.8, 0.8];
    assert!(alphas.iter().zip(expected).all(|(a, e)| (a - e).abs() < 1e-6), "{alphas:?}");
    assert_eq!(manager.stage("seed-1"), Some(Stage::Blending), "held below 1: the blend is not complete");
    // Cosine up to 1 over 2 steps completes the blend; the seed moves on.
    manager.apply(&blend_command(1, 1.0, 1.0, 2.0)).expect("blend change");
    manager.advance();
    let halfway = alpha_metric(&mut manager, "seed-1");
    assert!((halfway - 0.9).abs() < 1e-6, "cosine halfway from 0.8 to 1: {halfway}");
    manager.advance();
    assert_eq!(alpha_metric(&mut manager, "seed-1"), 1.0);
    assert_eq!(manager.stage("seed-1"), Some(Stage::Shadowing), "a complete blend moves on at once");
    assert_eq!(manager.counters().commands_rejected, 0);
}

#[test]
fn an_illegal_blend_change_is_refused_with_an_error_and_an_event() {
    let mut manager = blending_seed(0);
    manager.apply(&seed_command(SeedOperation::Germinate, 2, "BP001", 0.1)).expect("germinates");
    manager.take_events();
    let err = manager.apply(&blend_command(2, 0.5, 0.0, 4.0)).expect_err("seed-2 is GERMINATED");
    assert_eq!(err, KasminaError::BlendRefused { seed: "seed-2".into(), stage: Stage::Germinated });
    assert_eq!(
        err.to_string(),
        "blend change refused: seed `seed-2` is SEED_STAGE_GERMINATED, not SEED_STAGE_BLENDING"
    );
    let err = manager.apply(&blend_command(1, 0.5, 7.0, 4.0)).expect_err("no method 7");
    assert!(matches!(err, KasminaError::BadBlend(ref bad) if bad.name == "blending_method_index"), "{err:?}");
    let rejected = manager.take_events().into_iter().filter(|e| e.description == "command_rejected").count();
    assert_eq!((rejected, manager.counters().commands_rejected), (2, 2));
    assert_eq!(manager.stage("seed-2"), Some(Stage::Germinated));
    // seed-1 keeps the default schedule: it was not changed by the refused command.
    manager.advance();
    assert!((alpha_metric(&mut manager, "seed-1") - KasminaConfig::default().schedule.alpha(1) as f64).abs() < 1e-9);
}
