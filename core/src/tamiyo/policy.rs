//! Tamiyo's decision rule: what to do at this step, given the steps before it.
//!
//! Esper-Lite's Tamiyo ran a graph network (`tamiyo_gnn_v1`) whose argmax picked one
//! of four actions: germinate a seed, adjust the optimizer, open or close a circuit
//! breaker, or pause. This module keeps those actions and replaces the network with
//! a rule a reader can check by hand, applied in this order:
//!
//! 1. a non-finite training loss opens the breaker (nothing else is trustworthy);
//! 2. an active seed with an exploding gradient or a risk score at the limit opens the
//!    breaker for that seed, once; when the seed recovers (or leaves), it is closed;
//!    one unhealthy seed at a time is tracked, the first in packet order;
//! 3. right after an adaptation, a cooldown holds further ones (pause);
//! 4. a loss whose windowed mean rose by more than `rising_relative` cuts the
//!    learning rate (`lr_delta`);
//! 5. a loss whose windowed mean improved by less than `plateau_relative` — a
//!    plateau — with no seed in flight germinates the next blueprint, with a blending
//!    `alpha` that grows the flatter the plateau is;
//! 6. otherwise pause (reason `policy`): training is fine, leave it alone.
//!
//! [`Policy::decide`] proposes; [`Policy::issued`] records what actually went out, so
//! a proposal the risk engine vetoed starts no cooldown and moves no breaker.
//!
//! The trend comes from [`LossTrend`]: windowed means of the training loss, so the
//! minibatch noise of a small batch does not read as a trend. Everything is plain
//! `f32` arithmetic on the packet history: the same packets give the same decisions,
//! bit for bit.

use std::collections::BTreeMap;

use crate::leyline::{
    AdaptationCommand, CircuitBreakerState, CommandCircuitBreaker, CommandOptimizerAdjustment, CommandPayload,
    CommandSeedOperation, CommandType, SeedLifecycleStage, SeedOperation, SeedState, SystemStatePacket,
};

use super::trend::{LossTrend, TrendReading};

/// Names this decision rule in commands and field reports (`policy_version`).
pub const POLICY_VERSION: &str = "tamiyo-rules-v1";

/// The optimizer Tolaria runs; named in `OPTIMIZER` commands as the original did.
pub const OPTIMIZER_ID: &str = "sgd";

/// Thresholds of the decision rule.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Weight of the newest loss in the moving average behind `loss_delta` (0 < w ≤ 1).
    /// At 0.2 the RC1 minibatch noise (±0.3) stays under the risk engine's 0.075
    /// warning, while a jump of 0.75 in one step still reads as a 0.15 spike.
    pub loss_smoothing: f32,
    /// Steps per trend window (16: one RC1 epoch of 64 samples in batches of 4).
    pub trend_window: usize,
    /// A windowed mean improving by less than this fraction is a plateau (1 %).
    pub plateau_relative: f32,
    /// A windowed mean rising by more than this fraction is a rising trend (2 %).
    pub rising_relative: f32,
    /// Fractional learning-rate change sent on a rising trend (`lr_delta`;
    /// new lr = lr × (1 + lr_delta)).
    pub lr_delta: f32,
    /// A seed's gradient norm above this is an explosion.
    pub seed_gradient_norm_limit: f32,
    /// A seed's risk score at or above this makes it unhealthy.
    pub seed_risk_limit: f32,
    /// Steps after an issued germination or optimizer change before the next one;
    /// two windows, so the next decision reads losses from after the change.
    pub cooldown_steps: u64,
    /// Blueprints germinated in turn (Karn ids).
    pub blueprints: Vec<String>,
    /// Blending `alpha` of a germination on a plateau just under the threshold…
    pub alpha_base: f32,
    /// …rising linearly to this on a perfectly flat one.
    pub alpha_max: f32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            loss_smoothing: 0.2,
            trend_window: 16,
            plateau_relative: 0.01,
            rising_relative: 0.02,
            lr_delta: -0.1,
            seed_gradient_norm_limit: 50.0,
            seed_risk_limit: 0.9,
            cooldown_steps: 32,
            blueprints: ["BP001", "BP002", "BP003"].map(str::to_owned).to_vec(),
            alpha_base: 0.1,
            alpha_max: 0.5,
        }
    }
}

/// What the rule decided to do.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyAction {
    /// Germinate `blueprint_id` in `seed_id` (empty: Kasmina picks the slot).
    Germinate { seed_id: String, blueprint_id: String, alpha: f32 },
    /// Change the learning rate by the fraction `lr_delta`.
    AdjustLearningRate { lr_delta: f32 },
    /// Move a breaker (for `seed_id`, or the whole adaptation path when empty).
    Breaker { seed_id: String, desired: CircuitBreakerState, rationale: &'static str },
    /// Change nothing.
    Pause,
}

/// A decision and the signals it was made from (the risk engine reads them too).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDecision {
    /// The action.
    pub action: PolicyAction,
    /// Smoothed training loss at this step (NaN if the packet's loss was not finite).
    pub loss: f32,
    /// Change of the smoothed loss since the previous step (0 on the first).
    pub loss_delta: f32,
    /// Relative change of the windowed mean loss (`None` until two windows were seen).
    pub window_change: Option<f32>,
    /// The rule's own risk estimate in [0, 1]: the riskiest seed it was shown.
    pub risk: f32,
}

impl PolicyDecision {
    /// The blueprint this decision wants, if any (the service looks up its metadata).
    pub fn blueprint_id(&self) -> Option<&str> {
        match &self.action {
            PolicyAction::Germinate { blueprint_id, .. } => Some(blueprint_id),
            _ => None,
        }
    }

    /// The command this decision stands for, before ids, timestamps and risk vetoes.
    pub fn command(&self) -> AdaptationCommand {
        let (command_type, target_seed_id, payload) = match &self.action {
            PolicyAction::Germinate { seed_id, blueprint_id, alpha } => {
                let operation = CommandSeedOperation {
                    operation: SeedOperation::Germinate.into(),
                    blueprint_id: blueprint_id.clone(),
                    parameters: BTreeMap::from([("alpha".to_owned(), *alpha)]),
                };
                (CommandType::Seed, seed_id.clone(), Some(CommandPayload::SeedOperation(operation)))
            }
            PolicyAction::AdjustLearningRate { lr_delta } => {
                let adjustment = CommandOptimizerAdjustment {
                    optimizer_id: OPTIMIZER_ID.to_owned(),
                    hyperparameters: BTreeMap::from([("lr_delta".to_owned(), *lr_delta)]),
                };
                (CommandType::Optimizer, String::new(), Some(CommandPayload::OptimizerAdjustment(adjustment)))
            }
            PolicyAction::Breaker { seed_id, desired, rationale } => {
                let breaker =
                    CommandCircuitBreaker { desired_state: (*desired).into(), rationale: (*rationale).into() };
                (CommandType::CircuitBreaker, seed_id.clone(), Some(CommandPayload::CircuitBreaker(breaker)))
            }
            PolicyAction::Pause => (CommandType::Pause, String::new(), None),
        };
        let mut annotations = BTreeMap::from([("policy_version".to_owned(), POLICY_VERSION.to_owned())]);
        if matches!(self.action, PolicyAction::Pause) {
            annotations.insert("risk_reason".to_owned(), "policy".to_owned());
        }
        AdaptationCommand {
            version: 1,
            command_type: command_type.into(),
            target_seed_id,
            payload,
            annotations,
            ..AdaptationCommand::default()
        }
    }
}

/// The decision rule and the history it keeps. See the module docs.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    trend: LossTrend,
    last_adaptation_step: Option<u64>,
    germinations: usize,
    breaker_open_for: Option<String>,
}

impl Policy {
    /// A policy with no history yet.
    pub fn new(config: PolicyConfig) -> Self {
        assert!(!config.blueprints.is_empty(), "the policy needs at least one blueprint to germinate");
        assert!(config.plateau_relative > 0.0 && config.rising_relative > 0.0, "trend thresholds must be positive");
        assert!(config.alpha_base <= config.alpha_max, "alpha_base above alpha_max");
        Self {
            trend: LossTrend::new(config.loss_smoothing, config.trend_window),
            config,
            last_adaptation_step: None,
            germinations: 0,
            breaker_open_for: None,
        }
    }

    /// Decides on `packet`, folding its loss into the history.
    pub fn decide(&mut self, packet: &SystemStatePacket) -> PolicyDecision {
        let reading = self.trend.observe(packet.training_loss);
        let action = self.choose(packet, &reading);
        PolicyDecision {
            action,
            loss: reading.smoothed,
            loss_delta: reading.delta,
            window_change: reading.window_change,
            risk: policy_risk(packet),
        }
    }

    /// Records that `action`, decided at `global_step`, went out as proposed. Only
    /// issued actions start a cooldown, advance the blueprint rotation or move a
    /// breaker: a proposal the risk engine vetoed changed nothing in training.
    pub fn issued(&mut self, action: &PolicyAction, global_step: u64) {
        match action {
            PolicyAction::Germinate { .. } => {
                self.last_adaptation_step = Some(global_step);
                self.germinations += 1;
            }
            PolicyAction::AdjustLearningRate { .. } => self.last_adaptation_step = Some(global_step),
            PolicyAction::Breaker { seed_id, desired: CircuitBreakerState::Open, .. } if !seed_id.is_empty() => {
                self.breaker_open_for = Some(seed_id.clone());
            }
            PolicyAction::Breaker { desired: CircuitBreakerState::Closed, .. } => self.breaker_open_for = None,
            PolicyAction::Breaker { .. } | PolicyAction::Pause => {}
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    fn choose(&self, packet: &SystemStatePacket, reading: &TrendReading) -> PolicyAction {
        if reading.smoothed.is_nan() {
            return breaker(String::new(), CircuitBreakerState::Open, "loss_non_finite");
        }
        if let Some((seed, rationale)) = self.unhealthy_seed(&packet.seed_states) {
            if self.breaker_open_for.as_deref() == Some(seed.seed_id.as_str()) {
                return PolicyAction::Pause;
            }
            return breaker(seed.seed_id.clone(), CircuitBreakerState::Open, rationale);
        }
        if let Some(seed_id) = &self.breaker_open_for {
            return breaker(seed_id.clone(), CircuitBreakerState::Closed, "seed_recovered");
        }
        let cooling = self.last_adaptation_step.is_some_and(|at| packet.global_step < at + self.config.cooldown_steps);
        let Some(change) = reading.window_change.filter(|_| !cooling) else {
            return PolicyAction::Pause;
        };
        if change > self.config.rising_relative {
            return PolicyAction::AdjustLearningRate { lr_delta: self.config.lr_delta };
        }
        if change > -self.config.plateau_relative && !packet.seed_states.iter().any(in_flight) {
            return self.germinate(&packet.seed_states, change);
        }
        PolicyAction::Pause
    }

    fn unhealthy_seed<'a>(&self, seeds: &'a [SeedState]) -> Option<(&'a SeedState, &'static str)> {
        seeds.iter().filter(|seed| in_flight(seed)).find_map(|seed| {
            let exploding =
                !seed.gradient_norm.is_finite() || seed.gradient_norm > self.config.seed_gradient_norm_limit;
            let risky = !seed.risk_score.is_finite() || seed.risk_score >= self.config.seed_risk_limit;
            match (exploding, risky) {
                (true, _) => Some((seed, "seed_gradient_explosion")),
                (false, true) => Some((seed, "seed_risk_high")),
                (false, false) => None,
            }
        })
    }

    /// Germinates the next blueprint in a dormant seed (the lowest id), or in a new
    /// one Kasmina picks. `alpha` runs from `alpha_base` at the plateau threshold to
    /// `alpha_max` when the loss stopped improving altogether.
    fn germinate(&self, seeds: &[SeedState], window_change: f32) -> PolicyAction {
        let dormant = seeds.iter().filter(|seed| seed.stage == i32::from(SeedLifecycleStage::Dormant));
        let seed_id = dormant.map(|seed| seed.seed_id.as_str()).min().unwrap_or_default().to_owned();
        let blueprints = &self.config.blueprints;
        let blueprint_id = blueprints.get(self.germinations % blueprints.len()).cloned().unwrap_or_default();
        let improvement = (-window_change).max(0.0);
        let flatness = (1.0 - improvement / self.config.plateau_relative).clamp(0.0, 1.0);
        let alpha = self.config.alpha_base + flatness * (self.config.alpha_max - self.config.alpha_base);
        PolicyAction::Germinate { seed_id, blueprint_id, alpha }
    }
}

fn breaker(seed_id: String, desired: CircuitBreakerState, rationale: &'static str) -> PolicyAction {
    PolicyAction::Breaker { seed_id, desired, rationale }
}

/// Seeds between germination and fossilisation: adaptations still under way. (Not
/// Kasmina's `is_active`, which asks who takes part in the forward pass.)
fn in_flight(seed: &SeedState) -> bool {
    use SeedLifecycleStage::{Blending, Germinated, Probationary, Shadowing, Training};
    SeedLifecycleStage::try_from(seed.stage)
        .is_ok_and(|stage| matches!(stage, Germinated | Training | Blending | Shadowing | Probationary))
}

/// The rule's risk estimate: the highest seed risk score, clamped to [0, 1]; a
/// non-finite score is treated as the worst.
fn policy_risk(packet: &SystemStatePacket) -> f32 {
    let worst = packet.seed_states.iter().map(|s| if s.risk_score.is_finite() { s.risk_score } else { 1.0 });
    worst.fold(0.0_f32, f32::max).clamp(0.0, 1.0)
}
