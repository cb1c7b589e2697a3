//! The gate between training and publication (Esper-Lite's rules): a head is
//! published only if its estimated average reward is not negative, its policy
//! and value losses are at most 1.0, its entropy is not negative, and its weights
//! are usable. Every broken rule is named, with the figure that broke it.

use crate::tamiyo::learned::GerminationHead;

use super::ppo::IterationStats;

/// Largest loss a publishable head may have.
pub const LOSS_LIMIT: f32 = 1.0;

/// The gate's verdict: the rules broken, as `(rule, figure)`; none means pass.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Validation {
    pub failures: Vec<(&'static str, String)>,
}

impl Validation {
    /// Whether the head may be published (`simic.validation.pass`).
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Judges `head` by its last iteration's `stats`.
pub fn validate(head: &GerminationHead, stats: &IterationStats) -> Validation {
    let mut failures = Vec::new();
    let figure = |value: f32| format!("{value:.4}");
    if below(stats.reward, 0.0) {
        failures.push(("average_reward_negative", figure(stats.reward)));
    }
    if above(stats.policy_loss, LOSS_LIMIT) {
        failures.push(("policy_loss_high", figure(stats.policy_loss)));
    }
    if above(stats.value_loss, LOSS_LIMIT) {
        failures.push(("value_loss_high", figure(stats.value_loss)));
    }
    if below(stats.entropy, 0.0) {
        failures.push(("entropy_negative", figure(stats.entropy)));
    }
    if let Err(error) = head.validate() {
        failures.push(("head_invalid", error.to_string()));
    }
    Validation { failures }
}

/// `value < floor`, with NaN failing too.
fn below(value: f32, floor: f32) -> bool {
    value.is_nan() || value < floor
}

/// `value > ceiling`, with NaN failing too.
fn above(value: f32, ceiling: f32) -> bool {
    value.is_nan() || value > ceiling
}
