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
fn plateau_germinates_after_two_windows_then_cools_down_then_rotates_blueprints() {
    let config = PolicyConfig::default();
    let dormant =
        [seed("seed-b", SeedLifecycleStage::Dormant, 0.0, 0.0), seed("seed-a", SeedLifecycleStage::Dormant, 0.0, 0.0)];
    let packets: Vec<_> = (0..70).map(|step| with_seeds(packet(step, 0.7), &dormant)).collect();
    let got = adaptations(&actions(&packets));
    let first = 2 * config.trend_window - 1;
    let second = first + config.cooldown_steps as usize;
    let germinate = |blueprint: &str| PolicyAction::Germinate {
        seed_id: "seed-a".into(),
        blueprint_id: blueprint.into(),
        alpha: config.alpha_max,
    };
    assert_eq!(got, [(first, germinate("BP001")), (second, germinate("BP002"))], "a flat loss is a perfect plateau");
}

#[test]
fn alpha_grows_with_flatness_and_a_healthy_decline_is_no_plateau() {
    // Each window's mean is `ratio` times the one before.
    let decide_at_second_window = |ratio: f32| {
        let mut policy = Policy::new(PolicyConfig::default());
        let packets: Vec<_> = (0..32).map(|step| packet(step, ratio.powi(step as i32 / 16))).collect();
        packets.iter().map(|p| policy.decide(p)).last().expect("32 decisions")
    };
    let half_flat = decide_at_second_window(0.995);
    let PolicyAction::Germinate { alpha, .. } = half_flat.action else { panic!("{half_flat:?}") };
    assert!((alpha - 0.3).abs() < 1e-3, "half the 1 % threshold gives alpha half way: {alpha}");
    assert_eq!(decide_at_second_window(0.98).action, PolicyAction::Pause, "2 % better per window: leave it alone");
    let change = decide_at_second_window(0.98).window_change.expect("two windows seen");
    assert!((change + 0.02).abs() < 1e-6, "{change}");
}

#[test]
fn plateau_with_an_active_seed_waits_for_it() {
    let training = [seed("seed-a", SeedLifecycleStage::Training, 1.0, 0.1)];
    let packets: Vec<_> = (0..30).map(|step| with_seeds(packet(step, 0.7), &training)).collect();
    assert!(adaptations(&actions(&packets)).is_empty(), "one seed at a time");
}

#[test]
fn rising_loss_cuts_the_learning_rate_once_per_cooldown() {
    let packets: Vec<_> = (0..70).map(|step| packet(step, 1.0 + 0.01 * step as f32)).collect();
    let got = adaptations(&actions(&packets));
    let lr_delta = PolicyConfig::default().lr_delta;
    // The first trend reading (step 31) shows the rise; the next comes after the 32-step cooldown.
    assert_eq!(
        got,
        [(31, PolicyAction::AdjustLearningRate { lr_delta }), (63, PolicyAction::AdjustLearningRate { lr_delta })]
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
    assert_eq!(second.loss, 1.0 + PolicyConfig::default().loss_smoothing * (2.0 - 1.0));
    assert_eq!(second.loss_delta, second.loss - 1.0);
    assert_eq!(second.risk, 1.0, "a non-finite risk score counts as the worst");
}

#[test]
fn germination_becomes_a_seed_command_with_blueprint_alpha_and_policy_version() {
    let mut policy = Policy::new(PolicyConfig::default());
    let decision = tamiyo_support::flat(0..32).iter().map(|p| policy.decide(p)).last().expect("32 decisions");
    assert_eq!(decision.blueprint_id(), Some("BP001"));
    let command = decision.command();
    assert_eq!(command.command_type, i32::from(CommandType::Seed));
    let Some(CommandPayload::SeedOperation(operation)) = &command.payload else { panic!("seed payload: {command:?}") };
    assert_eq!(operation.operation, i32::from(SeedOperation::Germinate));
    assert_eq!(operation.blueprint_id, "BP001");
    assert_eq!(operation.parameters.get("alpha"), Some(&PolicyConfig::default().alpha_max));
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
    for packet in tamiyo_support::flat(0..40) {
        // Nothing is issued: the risk engine vetoed every proposal.
        proposals.push(policy.decide(&packet).blueprint_id().map(str::to_owned));
    }
    let expected: Vec<Option<String>> =
        (0..40).map(|step| (step >= tamiyo_support::PLATEAU).then(|| "BP001".to_owned())).collect();
    assert_eq!(proposals, expected, "proposed again every step, same blueprint");
}
