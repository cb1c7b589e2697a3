//! Tamiyo's decision rule on crafted packet histories.

mod tamiyo_support;

use esper_core::leyline::{
    CircuitBreakerState, CommandPayload, CommandType, SeedLifecycleStage, SeedOperation, SystemStatePacket,
};
use esper_core::tamiyo::policy::POLICY_VERSION;
use esper_core::tamiyo::{Policy, PolicyAction, PolicyConfig};
use tamiyo_support::{packet, seed};

/// Runs the default policy over `packets`, every proposal issued; returns each step's action.
fn actions(packets: &[SystemStatePacket]) -> Vec<PolicyAction> {
    let mut policy = Policy::new(PolicyConfig::default());
    packets.iter().map(|p| decide_and_issue(&mut policy, p).action).collect()
}

fn decide_and_issue(policy: &mut Policy, packet: &SystemStatePacket) -> esper_core::tamiyo::PolicyDecision {
    let decision = policy.decide(packet);
    policy.issued(&decision.action, packet.global_step);
    decision
}

/// The index of every non-pause action, with the action.
fn adaptations(actions: &[PolicyAction]) -> Vec<(usize, PolicyAction)> {
    actions.iter().cloned().enumerate().filter(|(_, a)| *a != PolicyAction::Pause).collect()
}

fn with_seeds(mut packet: SystemStatePacket, seeds: &[esper_core::leyline::SeedState]) -> SystemStatePacket {
    packet.seed_states = seeds.to_vec();
    packet
}

#[test]
fn steadily_falling_loss_is_left_alone() {
    let packets: Vec<_> = (0..40).map(|step| packet(step, 2.0 - 0.04 * step as f32)).collect();
    assert!(adaptations(&actions(&packets)).is_empty(), "a healthy trend needs no adaptation");
}

#[test]
fn plateau_germinates_at_the_window_then_cools_down_then_rotates_blueprints() {
    let config = PolicyConfig::default();
    let dormant =
        [seed("seed-b", SeedLifecycleStage::Dormant, 0.0, 0.0), seed("seed-a", SeedLifecycleStage::Dormant, 0.0, 0.0)];
    let packets: Vec<_> = (0..40).map(|step| with_seeds(packet(step, 0.7), &dormant)).collect();
    let got = adaptations(&actions(&packets));
    // Step 0 has no predecessor; steps 1..=8 give the 8 flat deltas of the window.
    let first = config.plateau_window;
    let second = first + config.cooldown_steps as usize;
    let expected = [
        (first, PolicyAction::Germinate { seed_id: "seed-a".into(), blueprint_id: "BP001".into(), alpha: 0.1 }),
        (
            second,
            PolicyAction::Germinate {
                seed_id: "seed-a".into(),
                blueprint_id: "BP002".into(),
                alpha: (0.1 + 0.01 * (second - config.plateau_window) as f32).min(config.alpha_max),
            },
        ),
    ];
    assert_eq!(got[..2], expected[..]);
}

#[test]
fn plateau_with_an_active_seed_waits_for_it() {
    let training = [seed("seed-a", SeedLifecycleStage::Training, 1.0, 0.1)];
    let packets: Vec<_> = (0..30).map(|step| with_seeds(packet(step, 0.7), &training)).collect();
    assert!(adaptations(&actions(&packets)).is_empty(), "one seed at a time");
}

#[test]
fn rising_loss_cuts_the_learning_rate_once_per_cooldown() {
    let packets: Vec<_> = (0..20).map(|step| packet(step, 1.0 + 0.1 * step as f32)).collect();
    let got = adaptations(&actions(&packets));
    let lr_delta = PolicyConfig::default().lr_delta;
    // Deltas start at step 1; the third rising delta (step 3) decides, then 16 steps of cooldown.
    assert_eq!(
        got,
        vec![(3, PolicyAction::AdjustLearningRate { lr_delta }), (19, PolicyAction::AdjustLearningRate { lr_delta })]
    );
}

#[test]
fn unhealthy_seed_opens_its_breaker_once_and_closes_it_on_recovery() {
    let sick = [seed("seed-a", SeedLifecycleStage::Blending, 1.0e3, 0.2)];
    let risky = [seed("seed-a", SeedLifecycleStage::Blending, 1.0, 0.95)];
    let well = [seed("seed-a", SeedLifecycleStage::Blending, 1.0, 0.2)];
    let loss = |step| 2.0 - 0.05 * step as f32;
    let history = [&sick[..], &sick, &risky, &well, &well];
    let packets: Vec<_> = history.iter().enumerate().map(|(i, s)| with_seeds(packet(i as u64, loss(i)), s)).collect();
    let breaker = |desired, rationale| PolicyAction::Breaker { seed_id: "seed-a".into(), desired, rationale };
    assert_eq!(
        actions(&packets),
        vec![
            breaker(CircuitBreakerState::Open, "seed_gradient_explosion"),
            PolicyAction::Pause,
            PolicyAction::Pause,
            breaker(CircuitBreakerState::Closed, "seed_recovered"),
            PolicyAction::Pause,
        ]
    );
}

#[test]
fn non_finite_loss_opens_the_breaker_and_leaves_the_trend_intact() {
    let mut policy = Policy::new(PolicyConfig::default());
    policy.decide(&packet(0, 1.0));
    let decision = policy.decide(&packet(1, f32::NAN));
    assert_eq!(
        decision.action,
        PolicyAction::Breaker {
            seed_id: String::new(),
            desired: CircuitBreakerState::Open,
            rationale: "loss_non_finite"
        }
    );
    assert!(decision.loss.is_nan());
    let next = policy.decide(&packet(2, 1.0));
    assert_eq!(next.loss_delta, 0.0, "the NaN never entered the moving average");
}

#[test]
fn loss_delta_is_the_change_of_the_moving_average_and_risk_the_worst_seed() {
    let mut policy = Policy::new(PolicyConfig::default());
    let first = policy.decide(&packet(0, 1.0));
    assert_eq!((first.loss, first.loss_delta), (1.0, 0.0));
    let seeds =
        [seed("a", SeedLifecycleStage::Dormant, 0.0, 0.3), seed("b", SeedLifecycleStage::Training, 1.0, f32::NAN)];
    let second = policy.decide(&with_seeds(packet(1, 2.0), &seeds));
    assert_eq!(second.loss, 1.0 + 0.3 * (2.0 - 1.0));
    assert_eq!(second.loss_delta, second.loss - 1.0);
    assert_eq!(second.risk, 1.0, "a non-finite risk score counts as the worst");
}

#[test]
fn germination_becomes_a_seed_command_with_blueprint_alpha_and_policy_version() {
    let mut policy = Policy::new(PolicyConfig::default());
    let decision = tamiyo_support::flat(0..9).iter().map(|p| policy.decide(p)).last().expect("nine decisions");
    assert_eq!(decision.blueprint_id(), Some("BP001"));
    let command = decision.command();
    assert_eq!(command.command_type, i32::from(CommandType::Seed));
    let Some(CommandPayload::SeedOperation(operation)) = &command.payload else { panic!("seed payload: {command:?}") };
    assert_eq!(operation.operation, i32::from(SeedOperation::Germinate));
    assert_eq!(operation.blueprint_id, "BP001");
    assert_eq!(operation.parameters.get("alpha"), Some(&0.1));
    assert_eq!(command.annotations.get("policy_version").map(String::as_str), Some(POLICY_VERSION));
    assert!(!command.annotations.contains_key("risk_reason"), "only pauses carry a reason");
}

#[test]
fn same_history_same_decisions() {
    let packets: Vec<_> = (0..200).map(|step| packet(step, 1.0 + ((step * 7919 % 23) as f32 - 11.0) * 0.004)).collect();
    let mut first = Policy::new(PolicyConfig::default());
    let mut second = Policy::new(PolicyConfig::default());
    let a: Vec<_> = packets.iter().map(|p| decide_and_issue(&mut first, p)).collect();
    let b: Vec<_> = packets.iter().map(|p| decide_and_issue(&mut second, p)).collect();
    assert_eq!(a, b);
}

#[test]
fn a_vetoed_proposal_starts_no_cooldown_and_keeps_its_blueprint() {
    let mut policy = Policy::new(PolicyConfig::default());
    let mut proposals = Vec::new();
    for packet in tamiyo_support::flat(0..12) {
        // Nothing is issued: the risk engine vetoed every proposal.
        proposals.push(policy.decide(&packet).blueprint_id().map(str::to_owned));
    }
    let expected: Vec<Option<String>> = (0..12).map(|step| (step >= 8).then(|| "BP001".to_owned())).collect();
    assert_eq!(proposals, expected, "proposed again every step, same blueprint");
}
