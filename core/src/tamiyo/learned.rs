//! The learned part of Tamiyo's policy: which blueprint to germinate.
//!
//! The decision rule ([`super::policy`]) decides *when* to germinate — on a loss
//! plateau with no seed in flight. *Which* blueprint it then germinates is, out of
//! the box, Karn's ids in turn. Simic learns a better choice from field reports:
//! a [`GerminationHead`], a linear softmax over the candidate blueprints of the
//! decision's [`features`], with a linear value estimate beside it (PPO's critic).
//! Once Simic publishes one and Tamiyo installs it, Tamiyo samples the blueprint
//! from the head with its seeded RNG and records the probability it sampled with in
//! the field report (`policy_probability`), which is what the next round of
//! off-policy training needs. The head travels as JSON in a Leyline
//! `PolicyUpdate` payload.

/// Number of features a head reads: a bias and the validation loss.
pub const FEATURES: usize = 2;
/// Largest validation loss a feature carries (beyond it every loss looks alike).
const LOSS_FEATURE_MAX: f32 = 10.0;
/// Largest payload a head may take (a handful of blueprints needs a few hundred bytes).
const PAYLOAD_LIMIT_BYTES: usize = 64 * 1024;
/// Largest absolute weight a valid head holds: beyond it softmax saturates to a
/// certainty no field report supports.
const WEIGHT_LIMIT: f32 = 50.0;

/// A decision's features: `[1, validation loss clamped to [0, 10]]`.
pub fn features(validation_loss: f32) -> [f32; FEATURES] {
    let loss =
        if validation_loss.is_finite() { validation_loss.clamp(0.0, LOSS_FEATURE_MAX) } else { LOSS_FEATURE_MAX };
    [1.0, loss]
}

/// See the module docs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GerminationHead {
    /// Stamped on commands and field reports while installed (`policy_version`).
    pub version: String,
    /// The candidate blueprints (Karn ids), one logit row each.
    pub blueprints: Vec<String>,
    /// Per blueprint, the weights of its logit over the features.
    pub logit_weights: Vec<[f32; FEATURES]>,
    /// Weights of the value estimate (expected reward) over the features.
    pub value_weights: [f32; FEATURES],
}

/// A head that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeadError {
    #[error("policy payload is not a germination head: {0}")]
    Decode(String),
    #[error("policy payload is {len} bytes, over the {limit} byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("germination head `{version}` is invalid: {reason}")]
    Invalid { version: String, reason: String },
}

impl GerminationHead {
    /// The head that picks every blueprint with equal probability and expects no reward.
    pub fn uniform(version: impl Into<String>, blueprints: Vec<String>) -> Self {
        let logit_weights = vec![[0.0; FEATURES]; blueprints.len()];
        Self { version: version.into(), blueprints, logit_weights, value_weights: [0.0; FEATURES] }
    }

    /// The logits at `features`.
    pub fn logits(&self, features: &[f32; FEATURES]) -> Vec<f32> {
        self.logit_weights.iter().map(|row| dot(row, features)).collect()
    }

    /// The softmax probabilities of the blueprints at `features`.
    pub fn probabilities(&self, features: &[f32; FEATURES]) -> Vec<f32> {
        softmax(&self.logits(features))
    }

    /// The value estimate at `features`.
    pub fn value(&self, features: &[f32; FEATURES]) -> f32 {
        dot(&self.value_weights, features)
    }

    /// The blueprint drawn by `uniform` ∈ [0, 1) at `features`, and its probability.
    pub fn sample(&self, features: &[f32; FEATURES], uniform: f32) -> (usize, f32) {
        let probabilities = self.probabilities(features);
        let mut cumulative = 0.0;
        for (index, probability) in probabilities.iter().enumerate() {
            cumulative += probability;
            if uniform < cumulative {
                return (index, *probability);
            }
        }
        let last = probabilities.len() - 1;
        (last, probabilities[last])
    }

    /// Checks the head can be used: candidates, matching rows, finite bounded weights.
    pub fn validate(&self) -> Result<(), HeadError> {
        let invalid = |reason: String| Err(HeadError::Invalid { version: self.version.clone(), reason });
        if self.version.is_empty() {
            return invalid("it has no version".to_owned());
        }
        if self.blueprints.is_empty() || self.blueprints.len() != self.logit_weights.len() {
            return invalid(format!(
                "{} blueprints for {} logit rows",
                self.blueprints.len(),
                self.logit_weights.len()
            ));
        }
        let weights = self.logit_weights.iter().flatten().chain(&self.value_weights);
        if let Some(weight) = weights.copied().find(|w| !w.is_finite() || w.abs() > WEIGHT_LIMIT) {
            return invalid(format!("weight {weight} is not finite or exceeds ±{WEIGHT_LIMIT}"));
        }
        Ok(())
    }

    /// The head as a `PolicyUpdate` payload.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with finite floats: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and validates a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, HeadError> {
        if payload.len() > PAYLOAD_LIMIT_BYTES {
            return Err(HeadError::TooLarge { len: payload.len(), limit: PAYLOAD_LIMIT_BYTES });
        }
        let head: Self = serde_json::from_slice(payload).map_err(|error| HeadError::Decode(error.to_string()))?;
        head.validate()?;
        Ok(head)
    }
}

fn dot(weights: &[f32; FEATURES], features: &[f32; FEATURES]) -> f32 {
    weights.iter().zip(features).map(|(w, x)| w * x).sum()
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exponentials: Vec<f32> = logits.iter().map(|logit| libm::expf(logit - max)).collect();
    let total: f32 = exponentials.iter().sum();
    exponentials.iter().map(|value| value / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_bad_heads_are_refused_with_reasons() {
        let mut head = GerminationHead::uniform("simic-1", vec!["BP001".into(), "BP002".into()]);
        head.logit_weights[1] = [0.5, -0.25];
        assert_eq!(GerminationHead::decode(&head.encode()), Ok(head.clone()));
        let probabilities = head.probabilities(&features(1.0));
        assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(head.sample(&features(1.0), 0.0).0, 0);
        assert_eq!(head.sample(&features(1.0), 0.999).0, 1);
        let cases: [(GerminationHead, &str); 3] = [
            (GerminationHead { logit_weights: vec![[0.0; 2]], ..head.clone() }, "2 blueprints for 1 logit rows"),
            (GerminationHead { value_weights: [1.0e9, 0.0], ..head.clone() }, "exceeds"),
            (GerminationHead { version: String::new(), ..head.clone() }, "no version"),
        ];
        for (bad, reason) in cases {
            let error = GerminationHead::decode(&bad.encode()).expect_err(reason).to_string();
            assert!(error.contains(reason), "{error}");
        }
        assert!(matches!(GerminationHead::decode(b"{}"), Err(HeadError::Decode(_))));
    }
}
