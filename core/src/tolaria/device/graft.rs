//! Seed slots and the blend: where Kasmina's seeds enter the model a device trains.
//!
//! A host model has named [`Slot`]s. A slot wraps one host layer: a seed grafted
//! there is a dense layer of the same shape (`inputs → outputs`, the shape of its
//! Karn blueprint's module) that reads the layer's input and whose output is blended
//! with the layer's output, using the layer's own activation. The RC1 host,
//! `Linear(4 → 2)`, has one slot `head` around that layer; the default MLP host has
//! one slot `hidden` around its hidden layer.
//!
//! The blend follows Esper-Lite's modes with the seed's alpha (clamped to [0, 1]):
//! CONVEX `α·seed + (1−α)·host`, RESIDUAL `host + α·seed`, CHANNEL (per-channel
//! `α·gain_c`, clamped) and CONFIDENCE (effective alpha `α·gate`, the gate
//! `sigmoid(k·(top1 − top2 − τ))` of the seed output's softmax, k 4.0, τ 0.2). While a
//! seed is live (TRAINING or BLENDING) the host enters the blend detached: the host
//! learns from its own output only, so its gradients are the same with the seed
//! attached as without it. A FOSSILIZED seed is part of the host: its blend is no
//! longer detached and it learns with the host's loss.

use super::DeviceError;

/// The activation a host layer, and any seed beside it, applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None: the layer's output is its affine map (logits).
    Identity,
    /// `tanh`, the MLP's hidden activation.
    Tanh,
}

impl Activation {
    pub(super) fn apply(self, value: f32) -> f32 {
        match self {
            Self::Identity => value,
            Self::Tanh => libm::tanhf(value),
        }
    }

    /// The derivative, from the activation's output.
    pub(super) fn derivative_at_output(self, output: f32) -> f32 {
        match self {
            Self::Identity => 1.0,
            Self::Tanh => 1.0 - output * output,
        }
    }
}

/// A place in the host where one seed can be grafted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `head`, `hidden`.
    pub name: &'static str,
    /// Width of the input of the wrapped layer, which the seed reads.
    pub inputs: usize,
    /// Width of the wrapped layer's output, which the seed's output is blended with.
    pub outputs: usize,
    pub activation: Activation,
}

/// Esper-Lite's blend modes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum BlendMode {
    /// `α·seed + (1−α)·host`.
    #[default]
    Convex,
    /// `host + α·seed`.
    Residual,
    /// Convex per channel with `α_c = clamp(α·gain_c, 0, 1)`; one gain per output.
    Channel { gains: Vec<f32> },
    /// Convex with `α·gate`, the gate from the seed output's top-1/top-2 margin.
    Confidence,
}

/// CONFIDENCE's gate slope and margin threshold (Esper-Lite: k 4.0, τ 0.2).
pub const CONFIDENCE_K: f32 = 4.0;
pub const CONFIDENCE_TAU: f32 = 0.2;

impl BlendMode {
    /// The wire tag of the mode in a snapshot.
    pub(super) fn tag(&self) -> u8 {
        match self {
            Self::Convex => 0,
            Self::Residual => 1,
            Self::Channel { .. } => 2,
            Self::Confidence => 3,
        }
    }

    /// Per-output effective alpha (how much of the seed enters) and the host's
    /// factor, for one sample whose seed output is `seed`.
    fn weights(&self, alpha: f32, seed: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let alpha = alpha.clamp(0.0, 1.0);
        match self {
            Self::Convex => (vec![alpha; seed.len()], vec![1.0 - alpha; seed.len()]),
            Self::Residual => (vec![alpha; seed.len()], vec![1.0; seed.len()]),
            Self::Channel { gains } => {
                let per: Vec<f32> = gains.iter().map(|gain| (alpha * gain).clamp(0.0, 1.0)).collect();
                let host = per.iter().map(|a| 1.0 - a).collect();
                (per, host)
            }
            Self::Confidence => {
                let effective = (alpha * confidence_gate(seed)).clamp(0.0, 1.0);
                (vec![effective; seed.len()], vec![1.0 - effective; seed.len()])
            }
        }
    }
}

/// `sigmoid(k·(top1 − top2 − τ))` over the softmax of `seed`. The gate is a weight
/// read off the seed's confidence, not a path for gradient: it is treated as a
/// constant in the backward pass.
fn confidence_gate(seed: &[f32]) -> f32 {
    let max = seed.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exponentials: Vec<f32> = seed.iter().map(|value| libm::expf(value - max)).collect();
    let total: f32 = exponentials.iter().sum();
    let (mut top1, mut top2) = (0.0_f32, 0.0_f32);
    for probability in exponentials.iter().map(|e| e / total) {
        if probability > top1 {
            (top1, top2) = (probability, top1);
        } else if probability > top2 {
            top2 = probability;
        }
    }
    1.0 / (1.0 + libm::expf(-CONFIDENCE_K * (top1 - top2 - CONFIDENCE_TAU)))
}

/// One sample's blend: the output, and the factors its gradient flows back by.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Blended {
    pub output: Vec<f32>,
    /// ∂output/∂seed, per output.
    pub seed_factor: Vec<f32>,
    /// ∂output/∂host, per output (used only where the host is not detached).
    pub host_factor: Vec<f32>,
}

/// Blends `seed` into `host` with `alpha` as `mode` says.
pub(super) fn blend(mode: &BlendMode, host: &[f32], seed: &[f32], alpha: f32) -> Blended {
    debug_assert_eq!(host.len(), seed.len());
    let (seed_factor, host_factor) = mode.weights(alpha, seed);
    let output = host.iter().zip(seed).zip(seed_factor.iter().zip(&host_factor)).map(|((h, s), (a, b))| a * s + b * h);
    Blended { output: output.collect(), seed_factor, host_factor }
}

/// Where a seed is in its life, as the device needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraftStage {
    /// Learns beside the host; the model's output takes it with alpha 0.
    Training,
    /// Faded in with the alpha Kasmina's schedule gives.
    Blending,
    /// Part of the host for good: alpha frozen, blend no longer detached.
    Fossilized,
}

impl GraftStage {
    pub(super) fn tag(self) -> u8 {
        match self {
            Self::Training => 0,
            Self::Blending => 1,
            Self::Fossilized => 2,
        }
    }

    pub(super) fn from_tag(tag: u8) -> Option<Self> {
        [Self::Training, Self::Blending, Self::Fossilized].into_iter().find(|stage| stage.tag() == tag)
    }
}

/// What Kasmina wants grafted: one entry per seed that holds a kernel and is in
/// TRAINING, BLENDING (or a later live stage) or FOSSILIZED. A seed the device holds
/// that is missing here is dropped with its optimizer state (culled), unless it is
/// fossilized, which is for good.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedGraft {
    pub seed_id: String,
    /// The kernel's module shape (its Karn blueprint's `inputs → outputs`).
    pub inputs: usize,
    pub outputs: usize,
    pub stage: GraftStage,
    /// The seed's alpha now (0 while TRAINING).
    pub alpha: f32,
    pub mode: BlendMode,
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraftReport {
    /// Seeds given parameters now, with the slot they went to.
    pub attached: Vec<(String, &'static str)>,
    /// Seeds dropped with their parameters and optimizer state.
    pub dropped: Vec<String>,
    /// Seeds that could not be grafted, and why.
    pub refused: Vec<(String, String)>,
}

/// Gradients of one batch laid over the device's flat parameter vector (host
/// parameters first, then each seed's): `host` from the host's own loss, `seed`
/// from the live seeds' loss. With the host detached in the blend, `seed` is zero
/// on every host parameter, so Kasmina's overlap check finds no leak.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    pub host: Vec<f32>,
    pub seed: Vec<f32>,
    /// How many leading entries are host parameters (fossils included).
    pub host_parameters: usize,
}

/// Refuses a graft whose blend mode does not fit its shape.
pub(super) fn check_mode(plan: &SeedGraft) -> Result<(), DeviceError> {
    let refuse = |reason: String| Err(DeviceError::GraftRefused { seed: plan.seed_id.clone(), reason });
    match &plan.mode {
        BlendMode::Channel { gains } if gains.len() != plan.outputs => {
            refuse(format!("CHANNEL blend has {} gains for {} outputs", gains.len(), plan.outputs))
        }
        BlendMode::Channel { gains } if gains.iter().any(|gain| !gain.is_finite()) => {
            refuse("CHANNEL blend has a non-finite gain".to_owned())
        }
        BlendMode::Confidence if plan.outputs < 2 => refuse("CONFIDENCE blend needs two outputs".to_owned()),
        _ if !plan.alpha.is_finite() => refuse(format!("alpha {} is not finite", plan.alpha)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_blends_as_esper_lite_says() {
        let (host, seed) = ([1.0, -2.0], [3.0, 0.5]);
        assert_eq!(blend(&BlendMode::Convex, &host, &seed, 0.25).output, vec![1.5, -1.375]);
        assert_eq!(blend(&BlendMode::Residual, &host, &seed, 0.5).output, vec![2.5, -1.75]);
        let channel = BlendMode::Channel { gains: vec![1.0, 0.0] };
        assert_eq!(blend(&channel, &host, &seed, 0.5).output, vec![2.0, -2.0]);
        // Alpha outside [0, 1] is clamped, as the original's.
        assert_eq!(blend(&BlendMode::Convex, &host, &seed, 7.0).output, seed.to_vec());
        // A confident seed (margin well above τ) is let in almost fully; a torn one much less.
        let sure = blend(&BlendMode::Confidence, &[0.0, 0.0], &[9.0, -9.0], 1.0);
        let torn = blend(&BlendMode::Confidence, &[0.0, 0.0], &[0.1, 0.0], 1.0);
        assert!(sure.seed_factor[0] > 0.95 && torn.seed_factor[0] < 0.5, "{sure:?} {torn:?}");
        let expected_torn = 1.0 / (1.0 + libm::expf(-4.0 * (libm::tanhf(0.05) - 0.2)));
        assert!((torn.seed_factor[0] - expected_torn).abs() < 1e-6, "{torn:?} vs {expected_torn}");
    }

    #[test]
    fn at_alpha_zero_every_mode_gives_the_host_exactly() {
        let (host, seed) = ([0.3, -0.7, 1.1], [5.0, 2.0, -4.0]);
        let modes = [
            BlendMode::Convex,
            BlendMode::Residual,
            BlendMode::Channel { gains: vec![1.0, 2.0, 0.5] },
            BlendMode::Confidence,
        ];
        for mode in modes {
            assert_eq!(blend(&mode, &host, &seed, 0.0).output, host.to_vec(), "{mode:?}");
        }
    }
}
