//! One sample through the host and its grafted seeds, and back: the pure-Rust
//! maths of [`super::Synthetic`].
//!
//! A step makes up to three passes over each sample (see [`Pass`]): the host's,
//! whose loss trains the host and its fossils; the live seed's, whose loss trains
//! that seed with the host detached; and the served one, the model's output, whose
//! loss is reported. Loops run in a fixed order, so the same inputs give the same
//! bits on every run.

use super::graft::{Activation, Blended, GraftStage, blend};
use super::model_state::{DenseState, ModelSpec, ModelState};

/// Which seeds a pass takes, and with what alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Fossils only: the host as it stands without its live seed.
    Host,
    /// Fossils and the live seed at alpha 1: what the seed learns against.
    Seed,
    /// Fossils and the live seed at its alpha (0 while TRAINING): the model's output.
    Served,
}

impl Pass {
    /// Seeds taking part, from the front of the list, and the live seed's alpha.
    fn seeds(self, state: &ModelState) -> (usize, f32) {
        let fossils = state.fossils();
        match (self, state.live_seed()) {
            (Self::Host, _) | (_, None) => (fossils, 0.0),
            (Self::Seed, Some(_)) => (fossils + 1, 1.0),
            (Self::Served, Some(seed)) if seed.stage == GraftStage::Training => (fossils + 1, 0.0),
            (Self::Served, Some(seed)) => (fossils + 1, seed.alpha),
        }
    }
}

/// What a forward pass leaves for the backward one.
#[derive(Debug, Clone)]
pub(super) struct Trace {
    /// The wrapped host layer's output.
    host_out: Vec<f32>,
    /// Each taking-part seed's output and blend.
    seeds: Vec<(Vec<f32>, Blended)>,
    /// The slot's output after every blend.
    slot_out: Vec<f32>,
    pub logits: Vec<f32>,
}

/// `activation(bias + weight·input)`, row by row.
fn dense(layer_weight: &[f32], layer_bias: &[f32], input: &[f32], activation: Activation) -> Vec<f32> {
    let rows = layer_weight.chunks_exact(input.len()).zip(layer_bias);
    rows.map(|(row, bias)| activation.apply(bias + row.iter().zip(input).map(|(w, x)| w * x).sum::<f32>())).collect()
}

/// The layer the slot wraps: the hidden layer of the MLP, the output layer of RC1.
fn wrapped(state: &ModelState) -> (&[f32], &[f32]) {
    match &state.hidden {
        Some(hidden) => (&hidden.weight, &hidden.bias),
        None => (&state.weight, &state.bias),
    }
}

/// Forward of one sample `x`.
pub(super) fn forward(spec: &ModelSpec, state: &ModelState, pass: Pass, x: &[f32]) -> Trace {
    let activation = spec.slot().activation;
    let (weight, bias) = wrapped(state);
    let host_out = dense(weight, bias, x, activation);
    let (count, live_alpha) = pass.seeds(state);
    let mut slot_out = host_out.clone();
    let mut seeds = Vec::with_capacity(count);
    for (index, seed) in state.seeds[..count].iter().enumerate() {
        let alpha = if index < state.fossils() { seed.alpha } else { live_alpha };
        let output = dense(&seed.layer.weight, &seed.layer.bias, x, activation);
        let blended = blend(&seed.mode, &slot_out, &output, alpha);
        slot_out.clone_from(&blended.output);
        seeds.push((output, blended));
    }
    let logits = match state.hidden {
        Some(_) => dense(&state.weight, &state.bias, &slot_out, Activation::Identity),
        None => slot_out.clone(),
    };
    Trace { host_out, seeds, slot_out, logits }
}

/// Softmax probabilities and the cross-entropy against `target`.
pub(super) fn softmax_loss(logits: &[f32], target: usize) -> (Vec<f32>, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exponentials: Vec<f32> = logits.iter().map(|logit| libm::expf(logit - max)).collect();
    let total: f32 = exponentials.iter().sum();
    let loss = libm::logf(total) - (logits[target] - max);
    (exponentials.iter().map(|value| value / total).collect(), loss)
}

/// Gradients shaped like a [`ModelState`]'s parameters.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Grads {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub hidden: Option<(Vec<f32>, Vec<f32>)>,
    pub seeds: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Grads {
    pub fn zeros(state: &ModelState) -> Self {
        let zeros = |layer: &DenseState| (vec![0.0; layer.weight.len()], vec![0.0; layer.bias.len()]);
        Self {
            weight: vec![0.0; state.weight.len()],
            bias: vec![0.0; state.bias.len()],
            hidden: state.hidden.as_ref().map(zeros),
            seeds: state.seeds.iter().map(|seed| zeros(&seed.layer)).collect(),
        }
    }

    /// Every gradient in the flat order: output layer, hidden layer, seeds.
    pub fn flat(&self) -> Vec<f32> {
        let mut flat: Vec<f32> = self.weight.iter().chain(&self.bias).copied().collect();
        for (weight, bias) in self.hidden.iter().chain(&self.seeds) {
            flat.extend(weight.iter().chain(bias));
        }
        flat
    }

    /// Adds `other`, entry by entry.
    pub fn add(&mut self, other: &Self) {
        let add = |into: &mut Vec<f32>, from: &Vec<f32>| into.iter_mut().zip(from).for_each(|(a, b)| *a += b);
        add(&mut self.weight, &other.weight);
        add(&mut self.bias, &other.bias);
        let pairs = self.hidden.iter_mut().chain(&mut self.seeds).zip(other.hidden.iter().chain(&other.seeds));
        for ((weight, bias), (other_weight, other_bias)) in pairs {
            add(weight, other_weight);
            add(bias, other_bias);
        }
    }
}

/// `gradient_row += delta·input` for each output, and the bias.
fn accumulate(weight: &mut [f32], bias: &mut [f32], deltas: &[f32], input: &[f32]) {
    for ((delta, bias), row) in deltas.iter().zip(bias.iter_mut()).zip(weight.chunks_exact_mut(input.len())) {
        *bias += delta;
        row.iter_mut().zip(input).for_each(|(gradient, x)| *gradient += delta * x);
    }
}

/// Backward of one sample from `d_logits`. `through_host` is false for the seed
/// pass: the host is detached in the live seed's blend, so the gradient stops at
/// the seed and no host parameter (output layer, hidden layer, fossil) gets any.
pub(super) fn backward(
    spec: &ModelSpec,
    state: &ModelState,
    trace: &Trace,
    x: &[f32],
    d_logits: &[f32],
    through_host: bool,
    grads: &mut Grads,
) {
    let activation = spec.slot().activation;
    let mut d_slot: Vec<f32> = match state.hidden {
        Some(_) => {
            if through_host {
                accumulate(&mut grads.weight, &mut grads.bias, d_logits, &trace.slot_out);
            }
            let columns = trace.slot_out.len();
            (0..columns)
                .map(|j| d_logits.iter().enumerate().map(|(c, d)| state.weight[c * columns + j] * d).sum())
                .collect()
        }
        None => d_logits.to_vec(),
    };
    for (index, (output, blended)) in trace.seeds.iter().enumerate().rev() {
        let deltas: Vec<f32> = d_slot
            .iter()
            .zip(&blended.seed_factor)
            .zip(output)
            .map(|((d, factor), out)| d * factor * activation.derivative_at_output(*out))
            .collect();
        let (weight, bias) = &mut grads.seeds[index];
        accumulate(weight, bias, &deltas, x);
        if !through_host {
            return;
        }
        d_slot.iter_mut().zip(&blended.host_factor).for_each(|(d, factor)| *d *= factor);
    }
    if !through_host {
        return;
    }
    let deltas: Vec<f32> =
        d_slot.iter().zip(&trace.host_out).map(|(d, out)| d * activation.derivative_at_output(*out)).collect();
    match &mut grads.hidden {
        Some((weight, bias)) => accumulate(weight, bias, &deltas, x),
        None => accumulate(&mut grads.weight, &mut grads.bias, &deltas, x),
    }
}
