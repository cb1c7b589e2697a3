//! Simic: PPO improves the germination head's true expected reward on generated
//! field reports; a head failing validation is never published; Tamiyo hot-swaps.

use esper_core::simic::IterationStats;
use esper_core::tamiyo::learned::GerminationHead;
use esper_scenarios::sim::simic::{Environment, SimicScenario, candidates, train_on};
use esper_sim::{RngTree, TraceMode, run_scenario};

fn reports(environment: Environment, seed: u64) -> Vec<esper_core::leyline::FieldReport> {
    environment.reports(512, &mut RngTree::new(seed).stream("reports"))
}

/// The scenario end to end (publish over the simulated Redis, the gate, the hot
/// swap) passes for every seed.
#[test]
fn scenario_passes_for_ten_seeds() {
    for seed in 0..10 {
        let report = run_scenario(&SimicScenario, seed, TraceMode::Hash);
        assert!(report.passed(), "{report}");
    }
}

/// Over seeds: the trained head's exact expected reward beats the uniform head's
/// by a margin, its importance-sampled estimate rises over the iterations, the
/// gate passes it, and a rerun gives the same head bit for bit.
#[test]
fn ppo_improves_the_expected_reward_and_is_repeatable() {
    let uniform = Environment::LEARNABLE.expected_reward(&GerminationHead::uniform("u", candidates()));
    for seed in 0..5 {
        let data = reports(Environment::LEARNABLE, seed);
        let (_, run) = train_on(&data, RngTree::new(seed).stream("ppo"));
        let run = run.expect("512 reports are enough");
        let trained = Environment::LEARNABLE.expected_reward(&run.candidate);
        assert!(trained > uniform + 0.02, "seed {seed}: {uniform} → {trained}");
        let rewards: Vec<f32> = run.iterations.iter().map(|s: &IterationStats| s.reward).collect();
        assert!(rewards.last() > rewards.first(), "seed {seed}: {rewards:?}");
        assert!(run.validation.passed(), "seed {seed}: {:?}", run.validation);
        let (_, again) = train_on(&data, RngTree::new(seed).stream("ppo"));
        assert_eq!(again.expect("again").candidate, run.candidate, "seed {seed}: same data and seed, same head");
    }
}

/// Reports in which every blueprint hurts: validation fails on the average reward
/// and the telemetry says so (pass 0, a WARNING event naming the rule).
#[test]
fn a_head_trained_on_hostile_reports_fails_validation_with_its_reason() {
    let data = reports(Environment::HOSTILE, 3);
    let (simic, run) = train_on(&data, RngTree::new(3).stream("ppo"));
    let run = run.expect("trained");
    assert!(!run.validation.passed());
    let packets = simic.telemetry(&run, 0).expect("within 280 bytes");
    assert_eq!(packets.len(), run.iterations.len() + 1);
    assert_eq!(packets[0].metric("simic.training.iterations"), Some(1.0));
    assert!(packets[0].metric("simic.training.reward").is_some() && packets[0].metric("simic.training.loss").is_some());
    let verdict = packets.last().expect("verdict");
    assert_eq!(verdict.metric("simic.validation.pass"), Some(0.0));
    let event = verdict.events.first().expect("a warning event");
    assert_eq!(event.description, "simic.validation_failed");
    assert!(event.attributes.contains_key("average_reward_negative"), "{event:?}");
}
