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
//! 4. a loss that keeps rising cuts the learning rate (`lr_delta`);
//! 5. a loss that stopped moving for `plateau_window` steps, with no seed active,
//!    germinates the next blueprint with a small blending `alpha`;
//! 6. otherwise pause (reason `policy`): training is fine, leave it alone.
//!
//! [`Policy::decide`] proposes; [`Policy::issued`] records what actually went out, so
//! a proposal the risk engine vetoed starts no cooldown and moves no breaker.
//!
//! The loss is the per-step training loss smoothed by an exponential moving average,
//! so the minibatch noise of a small batch does not read as a trend. Everything is
//! plain `f32` arithmetic on the packet history: the same packets give the same
//! decisions, bit for bit.

use std::collections::{BTreeMap, VecDeque};

use crate::leyline::{
    AdaptationCommand, CircuitBreakerState, CommandCircuitBreaker, CommandOptimizerAdjustment, CommandPayload,
    CommandSeedOperation, CommandType, SeedLifecycleStage, SeedOperation, SeedState, SystemStatePacket,
};

/// Names this decision rule in commands and field reports (`policy_version`).
pub const POLICY_VERSION: &str = "tamiyo-rules-v1";

/// The optimizer Tolaria runs; named in `OPTIMIZER` commands as the original did.
pub const OPTIMIZER_ID: &str = "sgd";

/// Thresholds of the decision rule.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Loss deltas remembered; at least the larger of the two windows below.
    pub history_len: usize,
    /// Weight of the newest loss in the moving average (0 < w ≤ 1).
    pub loss_smoothing: f32,
    /// Steps with |Δloss| below `plateau_epsilon` that make a plateau.
    pub plateau_window: usize,
    /// Largest |Δloss| that still counts as "not moving".
    pub plateau_epsilon: f32,
    /// Consecutive steps with Δloss above `rising_epsilon` that make a rising trend.
    pub rising_window: usize,
    /// Smallest Δloss that counts as rising.
    pub rising_epsilon: f32,
    /// Fractional learning-rate change sent on a rising trend (`lr_delta`;
    /// new lr = lr × (1 + lr_delta)).
    pub lr_delta: f32,
    /// A seed's gradient norm above this is an explosion.
    pub seed_gradient_norm_limit: f32,
    /// A seed's risk score at or above this makes it unhealthy.
    pub seed_risk_limit: f32,
    /// Steps after a germination or optimizer change before the next one.
    pub cooldown_steps: u64,
    /// Blueprints germinated in turn (Karn ids).
    pub blueprints: Vec<String>,
    /// Blending `alpha` of a germination right at the plateau window…
    pub alpha_base: f32,
    /// …plus this much per further plateau step…
    pub alpha_per_plateau_step: f32,
    /// …up to this.
    pub alpha_max: f32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            history_len: 32,
            loss_smoothing: 0.3,
            plateau_window: 8,
            plateau_epsilon: 0.002,
            rising_window: 3,
            rising_epsilon: 0.005,
            lr_delta: -0.1,
            seed_gradient_norm_limit: 50.0,
            seed_risk_limit: 0.9,
            cooldown_steps: 16,
            blueprints: ["BP001", "BP002", "BP003"].map(str::to_owned).to_vec(),
            alpha_base: 0.1,
            alpha_per_plateau_step: 0.01,
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
    /// Trailing steps on a plateau.
    pub plateau_steps: usize,
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
    smoothed_loss: Option<f32>,
    deltas: VecDeque<f32>,
    last_adaptation_step: Option<u64>,
    germinations: usize,
    breaker_open_for: Option<String>,
}

impl Policy {
    /// A policy with no history yet.
    pub fn new(config: PolicyConfig) -> Self {
        assert!(!config.blueprints.is_empty(), "the policy needs at least one blueprint to germinate");
        assert!(config.plateau_window > 0 && config.rising_window > 0, "trend windows must be positive");
        assert!(config.history_len >= config.plateau_window.max(config.rising_window), "history shorter than a window");
        assert!(config.loss_smoothing > 0.0 && config.loss_smoothing <= 1.0, "loss smoothing must be in (0, 1]");
        Self {
            deltas: VecDeque::with_capacity(config.history_len),
            config,
            smoothed_loss: None,
            last_adaptation_step: None,
            germinations: 0,
            breaker_open_for: None,
        }
    }

    /// Decides on `packet`, folding its loss into the history.
    pub fn decide(&mut self, packet: &SystemStatePacket) -> PolicyDecision {
        let (loss, loss_delta) = self.observe_loss(packet.training_loss);
        let action = self.choose(packet, loss);
        PolicyDecision { action, loss, loss_delta, plateau_steps: self.plateau_steps(), risk: policy_risk(packet) }
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

    fn choose(&self, packet: &SystemStatePacket, loss: f32) -> PolicyAction {
        if !loss.is_finite() {
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
        if cooling {
            return PolicyAction::Pause;
        }
        if self.rising_steps() >= self.config.rising_window {
            return PolicyAction::AdjustLearningRate { lr_delta: self.config.lr_delta };
        }
        if self.plateau_steps() >= self.config.plateau_window && !packet.seed_states.iter().any(is_active) {
            return self.germinate(&packet.seed_states);
        }
        PolicyAction::Pause
    }

    /// Folds the step's loss into the moving average; returns it and its change.
    /// A non-finite loss is reported as NaN and leaves the history untouched.
    fn observe_loss(&mut self, training_loss: f32) -> (f32, f32) {
        if !training_loss.is_finite() {
            return (f32::NAN, 0.0);
        }
        let weight = self.config.loss_smoothing;
        let previous = self.smoothed_loss;
        let smoothed = previous.map_or(training_loss, |prev| prev + weight * (training_loss - prev));
        self.smoothed_loss = Some(smoothed);
        // The first observation has no predecessor: its delta is reported as 0 but not
        // remembered, since it is no evidence of a plateau.
        let Some(previous) = previous else { return (smoothed, 0.0) };
        let delta = smoothed - previous;
        if self.deltas.len() == self.config.history_len {
            self.deltas.pop_front();
        }
        self.deltas.push_back(delta);
        debug_assert!(self.deltas.len() <= self.config.history_len);
        (smoothed, delta)
    }

    fn plateau_steps(&self) -> usize {
        self.deltas.iter().rev().take_while(|d| d.abs() < self.config.plateau_epsilon).count()
    }

    fn rising_steps(&self) -> usize {
        self.deltas.iter().rev().take_while(|&&d| d > self.config.rising_epsilon).count()
    }

    fn unhealthy_seed<'a>(&self, seeds: &'a [SeedState]) -> Option<(&'a SeedState, &'static str)> {
        seeds.iter().filter(|seed| is_active(seed)).find_map(|seed| {
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

    fn germinate(&self, seeds: &[SeedState]) -> PolicyAction {
        let dormant = seeds.iter().filter(|seed| seed.stage == i32::from(SeedLifecycleStage::Dormant));
        let seed_id = dormant.map(|seed| seed.seed_id.as_str()).min().unwrap_or_default().to_owned();
        let blueprints = &self.config.blueprints;
        let blueprint_id = blueprints.get(self.germinations % blueprints.len()).cloned().unwrap_or_default();
        let extra_steps = self.plateau_steps().saturating_sub(self.config.plateau_window) as f32;
        let alpha = (self.config.alpha_base + self.config.alpha_per_plateau_step * extra_steps)
            .clamp(0.0, self.config.alpha_max);
        PolicyAction::Germinate { seed_id, blueprint_id, alpha }
    }
}

fn breaker(seed_id: String, desired: CircuitBreakerState, rationale: &'static str) -> PolicyAction {
    PolicyAction::Breaker { seed_id, desired, rationale }
}

/// Seeds between germination and fossilisation: the ones that change the model.
fn is_active(seed: &SeedState) -> bool {
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
