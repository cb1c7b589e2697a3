//! PPO on the germination head: one iteration = `epochs` passes over the replay
//! in shuffled minibatches, each a gradient step on the clipped surrogate (plus
//! an entropy bonus) for the logits and on the squared error for the critic.
//!
//! The data is off-policy: the ratio is the head's probability of the logged
//! blueprint over the probability the behaviour policy logged it with, and the
//! clip keeps each update inside the region where that ratio is trustworthy.
//! Gradients are analytic (softmax of a linear map): for the logged action `a`
//! with advantage `A` and ratio `r`, while the clip is inactive,
//! `∂(rA)/∂zⱼ = A·r·(1[j=a] − πⱼ)`; the entropy's is `−πⱼ(log πⱼ + H)`.

use rand::RngCore;

use crate::tamiyo::learned::{FEATURES, GerminationHead};

use super::replay::Experience;

/// PPO's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpoConfig {
    /// Passes over the replay per iteration.
    pub epochs: usize,
    pub minibatch: usize,
    /// Step size of the logits.
    pub learning_rate: f32,
    /// Step size of the critic.
    pub value_learning_rate: f32,
    /// The ratio is clipped to [1 − clip, 1 + clip].
    pub clip: f32,
    pub entropy_coefficient: f32,
    /// Weight of the critic's loss in the reported total loss.
    pub value_coefficient: f32,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            epochs: 4,
            minibatch: 64,
            learning_rate: 0.5,
            value_learning_rate: 0.1,
            clip: 0.2,
            entropy_coefficient: 0.01,
            value_coefficient: 0.5,
        }
    }
}

/// What one iteration measured, on the whole replay after its updates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IterationStats {
    /// The head's expected reward, estimated by self-normalised importance
    /// sampling from the logged rewards (`simic.training.reward`).
    pub reward: f32,
    /// −mean clipped surrogate.
    pub policy_loss: f32,
    /// Mean squared error of the critic.
    pub value_loss: f32,
    /// Mean entropy of the head.
    pub entropy: f32,
    /// `policy_loss + value_coefficient·value_loss − entropy_coefficient·entropy`
    /// (`simic.training.loss`).
    pub loss: f32,
}

/// One PPO iteration on `head` over `replay` (non-empty).
pub fn iterate(
    head: &mut GerminationHead,
    replay: &[Experience],
    config: &PpoConfig,
    rng: &mut dyn RngCore,
) -> IterationStats {
    assert!(!replay.is_empty(), "PPO needs experiences");
    assert!(config.minibatch > 0 && config.clip > 0.0, "bad PPO configuration: {config:?}");
    let advantages = normalised_advantages(head, replay);
    let mut order: Vec<usize> = (0..replay.len()).collect();
    for _ in 0..config.epochs {
        shuffle(&mut order, rng);
        for batch in order.chunks(config.minibatch) {
            step(head, replay, &advantages, batch, config);
        }
    }
    measure(head, replay, &normalised_advantages(head, replay), config)
}

/// `R − V(s)` under the critic before the update, normalised to mean 0 and unit
/// spread (so the step size does not depend on the reward's scale).
fn normalised_advantages(head: &GerminationHead, replay: &[Experience]) -> Vec<f32> {
    let raw: Vec<f32> = replay.iter().map(|e| e.reward - head.value(&e.features)).collect();
    let mean = raw.iter().sum::<f32>() / raw.len() as f32;
    let spread = (raw.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / raw.len() as f32).sqrt().max(1e-6);
    raw.iter().map(|a| (a - mean) / spread).collect()
}

/// Fisher–Yates with the injected RNG.
fn shuffle(order: &mut [usize], rng: &mut dyn RngCore) {
    for index in (1..order.len()).rev() {
        let other = (rng.next_u64() % (index as u64 + 1)) as usize;
        order.swap(index, other);
    }
}

/// One gradient step on a minibatch.
fn step(head: &mut GerminationHead, replay: &[Experience], advantages: &[f32], batch: &[usize], config: &PpoConfig) {
    let actions = head.blueprints.len();
    let mut logit_gradient = vec![[0.0_f32; FEATURES]; actions];
    let mut value_gradient = [0.0_f32; FEATURES];
    for &index in batch {
        let (experience, advantage) = (&replay[index], advantages[index]);
        let probabilities = head.probabilities(&experience.features);
        let ratio = probabilities[experience.action] / experience.behaviour_probability;
        let clipped = (advantage > 0.0 && ratio > 1.0 + config.clip) || (advantage < 0.0 && ratio < 1.0 - config.clip);
        let entropy = entropy_of(&probabilities);
        for (action, probability) in probabilities.iter().enumerate() {
            let indicator = if action == experience.action { 1.0 } else { 0.0 };
            let surrogate = if clipped { 0.0 } else { advantage * ratio * (indicator - probability) };
            let bonus = -probability * (libm::logf(probability.max(1e-12)) + entropy);
            let dz = surrogate + config.entropy_coefficient * bonus;
            for (gradient, feature) in logit_gradient[action].iter_mut().zip(&experience.features) {
                *gradient += dz * feature;
            }
        }
        let error = head.value(&experience.features) - experience.reward;
        for (gradient, feature) in value_gradient.iter_mut().zip(&experience.features) {
            *gradient += 2.0 * error * feature;
        }
    }
    let scale = 1.0 / batch.len() as f32;
    for (row, gradient) in head.logit_weights.iter_mut().zip(&logit_gradient) {
        for (weight, g) in row.iter_mut().zip(gradient) {
            *weight += config.learning_rate * scale * g;
        }
    }
    for (weight, g) in head.value_weights.iter_mut().zip(&value_gradient) {
        *weight -= config.value_learning_rate * scale * g;
    }
}

fn entropy_of(probabilities: &[f32]) -> f32 {
    -probabilities.iter().map(|p| if *p > 0.0 { p * libm::logf(*p) } else { 0.0 }).sum::<f32>()
}

/// The iteration's figures on the whole replay.
fn measure(head: &GerminationHead, replay: &[Experience], advantages: &[f32], config: &PpoConfig) -> IterationStats {
    let count = replay.len() as f32;
    let (mut weighted_reward, mut weights, mut surrogate, mut value_loss, mut entropy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (experience, advantage) in replay.iter().zip(advantages) {
        let probabilities = head.probabilities(&experience.features);
        let ratio = probabilities[experience.action] / experience.behaviour_probability;
        weighted_reward += ratio * experience.reward;
        weights += ratio;
        surrogate += (ratio * advantage).min(ratio.clamp(1.0 - config.clip, 1.0 + config.clip) * advantage);
        let error = head.value(&experience.features) - experience.reward;
        value_loss += error * error;
        entropy += entropy_of(&probabilities);
    }
    let (policy_loss, value_loss, entropy) = (-surrogate / count, value_loss / count, entropy / count);
    IterationStats {
        reward: if weights > 0.0 { weighted_reward / weights } else { 0.0 },
        policy_loss,
        value_loss,
        entropy,
        loss: policy_loss + config.value_coefficient * value_loss - config.entropy_coefficient * entropy,
    }
}
