//! The host and its grafted seeds as libtorch tensors: the same passes and the
//! same blend as `pass.rs` and [`super::graft`], with autograd for the backward.
//!
//! A pass takes the fossils (blended with their frozen alphas, not detached: they
//! are host) and, for the seed and served passes, the live seed. In the seed pass
//! the host enters the live seed's blend detached (`Tensor::detach`), and so does
//! the MLP's output layer after it: the seed's loss reaches the seed's parameters
//! and nothing else, which is what makes the isolation check read zero host
//! gradient from autograd rather than from a flag. CONFIDENCE's gate is computed on
//! the detached seed output, a constant in the backward pass, as on the synthetic
//! device.

use tch::{Kind, Tensor};

use super::DeviceError;
use super::graft::{Activation, BlendMode, CONFIDENCE_K, CONFIDENCE_TAU, GraftStage};
use super::pass::Pass;

/// A dense layer `inputs → outputs` on the device: parameters that take part in
/// autograd and their momentum buffers, which do not.
#[derive(Debug)]
pub(super) struct TorchDense {
    /// `outputs × inputs`.
    pub weight: Tensor,
    pub bias: Tensor,
    pub weight_momentum: Tensor,
    pub bias_momentum: Tensor,
}

impl TorchDense {
    /// `activation(input · weightᵀ + bias)`; `detached` takes the parameters out of
    /// the autograd graph. Identity is the plain matmul and add, so RC1's seedless
    /// forward is the op sequence it always was.
    fn apply(&self, input: &Tensor, activation: Activation, detached: bool) -> Result<Tensor, DeviceError> {
        let (weight, bias) = if detached {
            (self.weight.f_detach()?, self.bias.f_detach()?)
        } else {
            (self.weight.shallow_clone(), self.bias.shallow_clone())
        };
        let affine = input.f_matmul(&weight.f_tr()?)?.f_add(&bias)?;
        Ok(match activation {
            Activation::Identity => affine,
            Activation::Tanh => affine.f_tanh()?,
        })
    }
}

/// A seed in the slot, as the device holds it.
#[derive(Debug)]
pub(super) struct TorchSeed {
    pub seed_id: String,
    pub slot: String,
    pub stage: GraftStage,
    /// The alpha the served output takes it with (0 while TRAINING).
    pub alpha: f32,
    pub mode: BlendMode,
    pub layer: TorchDense,
}

/// The host model and its seeds, fossils first and the live seed, if any, last.
#[derive(Debug)]
pub(super) struct TorchModel {
    /// The output layer.
    pub head: TorchDense,
    /// The MLP's hidden layer; `None` for RC1.
    pub hidden: Option<TorchDense>,
    pub seeds: Vec<TorchSeed>,
}

impl TorchModel {
    pub fn fossils(&self) -> usize {
        self.seeds.iter().take_while(|seed| seed.stage == GraftStage::Fossilized).count()
    }

    /// The live seed (TRAINING or BLENDING), which is always last.
    pub fn live_seed(&self) -> Option<&TorchSeed> {
        self.seeds.last().filter(|seed| seed.stage != GraftStage::Fossilized)
    }

    /// Seeds taking part in `pass`, from the front of the list, and the live seed's
    /// alpha: the rule of `pass.rs`, over this model's seeds.
    fn taking_part(&self, pass: Pass) -> (usize, f32) {
        let fossils = self.fossils();
        match (pass, self.live_seed()) {
            (Pass::Host, _) | (_, None) => (fossils, 0.0),
            (Pass::Seed, Some(_)) => (fossils + 1, 1.0),
            (Pass::Served, Some(seed)) if seed.stage == GraftStage::Training => (fossils + 1, 0.0),
            (Pass::Served, Some(seed)) => (fossils + 1, seed.alpha),
        }
    }

    /// The parameters the host pass trains, in the flat order of
    /// [`super::Gradients`]: output layer, hidden layer, fossils.
    pub fn host_parameters(&self) -> Vec<&Tensor> {
        let layers = std::iter::once(&self.head).chain(&self.hidden);
        let fossils = self.seeds[..self.fossils()].iter().map(|seed| &seed.layer);
        layers.chain(fossils).flat_map(|layer| [&layer.weight, &layer.bias]).collect()
    }

    /// Every parameter in the flat order: host parameters, then each seed's.
    pub fn parameters(&self) -> Vec<&Tensor> {
        let layers = std::iter::once(&self.head).chain(&self.hidden).chain(self.seeds.iter().map(|s| &s.layer));
        layers.flat_map(|layer| [&layer.weight, &layer.bias]).collect()
    }

    /// Logits of `inputs` (`samples × features`) in `pass`, with `slot_activation`
    /// the activation of the layer the slot wraps.
    pub fn forward(&self, inputs: &Tensor, pass: Pass, slot_activation: Activation) -> Result<Tensor, DeviceError> {
        let wrapped = self.hidden.as_ref().unwrap_or(&self.head);
        let mut slot = wrapped.apply(inputs, slot_activation, false)?;
        let (count, live_alpha) = self.taking_part(pass);
        let fossils = self.fossils();
        let detach_host = pass == Pass::Seed;
        for (index, seed) in self.seeds[..count].iter().enumerate() {
            let live = index >= fossils;
            let alpha = if live { live_alpha } else { seed.alpha };
            let output = seed.layer.apply(inputs, slot_activation, false)?;
            let host = if live && detach_host { slot.f_detach()? } else { slot };
            slot = blend(&seed.mode, &host, &output, alpha)?;
        }
        match &self.hidden {
            Some(_) => self.head.apply(&slot, Activation::Identity, detach_host),
            None => Ok(slot),
        }
    }
}

/// Blends `seed` into `host` (both `samples × outputs`) as `mode` says with
/// `alpha`, clamped to [0, 1]; see [`super::graft`].
fn blend(mode: &BlendMode, host: &Tensor, seed: &Tensor, alpha: f32) -> Result<Tensor, DeviceError> {
    let alpha = f64::from(alpha.clamp(0.0, 1.0));
    let convex = |weight: &Tensor| -> Result<Tensor, DeviceError> {
        let host_weight = weight.f_neg()?.f_add_scalar(1.0)?;
        Ok(seed.f_mul(weight)?.f_add(&host.f_mul(&host_weight)?)?)
    };
    match mode {
        BlendMode::Convex => Ok(seed.f_mul_scalar(alpha)?.f_add(&host.f_mul_scalar(1.0 - alpha)?)?),
        BlendMode::Residual => Ok(host.f_add(&seed.f_mul_scalar(alpha)?)?),
        BlendMode::Channel { gains } => {
            let gains = Tensor::f_from_slice(gains)?.f_to_device(seed.device())?;
            convex(&gains.f_mul_scalar(alpha)?.f_clamp(0.0, 1.0)?)
        }
        BlendMode::Confidence => {
            let probabilities = seed.f_detach()?.f_softmax(-1, Kind::Float)?;
            let (top, _) = probabilities.f_topk(2, -1, true, true)?;
            let margin = top.f_select(-1, 0)?.f_sub(&top.f_select(-1, 1)?)?;
            let gate =
                margin.f_sub_scalar(f64::from(CONFIDENCE_TAU))?.f_mul_scalar(f64::from(CONFIDENCE_K))?.f_sigmoid()?;
            convex(&gate.f_mul_scalar(alpha)?.f_clamp(0.0, 1.0)?.f_unsqueeze(-1)?)
        }
    }
}

/// Mean softmax cross-entropy, as `Tensor::cross_entropy_for_logits` but fallible.
pub(super) fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor, DeviceError> {
    Ok(logits.f_log_softmax(-1, Kind::Float)?.f_nll_loss(targets, None::<Tensor>, tch::Reduction::Mean, -100)?)
}

/// The gradient of `loss` for each of `parameters`; zeros for one the loss does
/// not reach (a detached host parameter in the seed pass).
pub(super) fn gradients(loss: &Tensor, parameters: &[&Tensor]) -> Result<Vec<Tensor>, DeviceError> {
    let raw = Tensor::f_run_backward(&[loss], parameters, false, false)?;
    raw.into_iter()
        .zip(parameters)
        .map(|(gradient, parameter)| if gradient.defined() { Ok(gradient) } else { Ok(parameter.f_zeros_like()?) })
        .collect()
}
