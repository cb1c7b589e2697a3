//! The pure-Rust device: the host models of [`ModelSpec`] with Kasmina's seeds
//! grafted into their slot, trained by SGD in `f32`.
//!
//! Each step runs the host's pass (host and fossils learn from the host's own
//! loss), the live seed's pass (the seed learns against the output with itself
//! at alpha 1, the host detached) and the served pass (the model's output with the
//! seed at its alpha, whose loss is reported), then one SGD update of everything.
//! See `pass.rs` for the maths and [`super::graft`] for the slot and the blend.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::graft::{self, Gradients, GraftReport, GraftStage, SeedGraft, Slot};
use super::model_state::{DenseState, GraftedSeed};
use super::pass::{self, Grads, Pass};
use super::{Batch, Device, DeviceError, Evaluation, ModelSpec, ModelState, StepOutcome};
use crate::planted::{Planted, PlantedBug};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Synthetic {
    spec: ModelSpec,
    state: ModelState,
    /// Always true in a build anyone runs; the unit tests and the planted
    /// `blend-leaks-into-host` clear it (the detach removed) to show that the
    /// isolation checks catch the leak.
    host_detached: bool,
}

impl Synthetic {
    /// A fresh model with PyTorch-style initial weights drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(spec: ModelSpec, rng: &mut R) -> Self {
        Self { state: ModelState::initial(&spec, rng), spec, host_detached: true }
    }

    /// A model in `state`, which must be shaped like `spec`: the libtorch device
    /// runs its seed reconciliation through this (see `tch_device.rs`).
    #[cfg(feature = "tch")]
    pub(super) fn from_state(spec: ModelSpec, state: ModelState) -> Self {
        debug_assert_eq!(state.weight.len(), spec.classes * spec.head_inputs());
        Self { spec, state, host_detached: true }
    }

    /// This device with `planted` armed: `blend-leaks-into-host` removes the
    /// detach of the host in a live seed's blend (see [`crate::planted`]).
    #[must_use]
    pub fn with_planted(self, planted: Planted) -> Self {
        Self { host_detached: !planted.armed(PlantedBug::BlendLeaksIntoHost), ..self }
    }

    /// The model's state (parameters, seeds, momentum buffers).
    pub fn state(&self) -> &ModelState {
        &self.state
    }

    /// The served pass over `batch`: softmax probabilities, row-major `samples ×
    /// classes`, and the mean loss.
    fn forward(&self, batch: &Batch) -> Result<(Vec<f32>, f32), DeviceError> {
        let (features, classes) = (self.spec.features, self.spec.classes);
        batch.check(features, classes)?;
        let mut probabilities = Vec::with_capacity(batch.len() * classes);
        let mut loss_sum = 0.0_f32;
        for (sample, &target) in batch.inputs.chunks_exact(features).zip(&batch.targets) {
            let trace = pass::forward(&self.spec, &self.state, Pass::Served, sample);
            let (row, loss) = pass::softmax_loss(&trace.logits, target as usize);
            loss_sum += loss;
            probabilities.extend(row);
        }
        Ok((probabilities, loss_sum / batch.len() as f32))
    }

    /// The host pass's and the seed pass's gradients over `batch` (the seed's
    /// zero when no seed is live).
    fn host_and_seed_grads(&self, batch: &Batch) -> Result<(Grads, Grads), DeviceError> {
        batch.check(self.spec.features, self.spec.classes)?;
        let scale = 1.0 / batch.len() as f32;
        let (mut host, mut seed) = (Grads::zeros(&self.state), Grads::zeros(&self.state));
        let live = self.state.live_seed().is_some();
        for (sample, &target) in batch.inputs.chunks_exact(self.spec.features).zip(&batch.targets) {
            let mut passes = vec![(Pass::Host, true, &mut host)];
            if live {
                passes.push((Pass::Seed, !self.host_detached, &mut seed));
            }
            for (which, through_host, grads) in passes {
                let trace = pass::forward(&self.spec, &self.state, which, sample);
                let (probabilities, _) = pass::softmax_loss(&trace.logits, target as usize);
                let d_logits: Vec<f32> = probabilities
                    .iter()
                    .enumerate()
                    .map(|(class, p)| (p - if class == target as usize { 1.0 } else { 0.0 }) * scale)
                    .collect();
                pass::backward(&self.spec, &self.state, &trace, sample, &d_logits, through_host, grads);
            }
        }
        Ok((host, seed))
    }

    /// A new seed for `plan`, checked against the slot. It starts as a copy of the
    /// layer the slot wraps plus a small jitter (a tenth of PyTorch's initial
    /// range), so blending it in does not throw away what the host has learnt — a
    /// fresh random seed at alpha 1 would — and it still learns its own way. The
    /// jitter comes from a stream keyed by the seed's id and the host's current
    /// weights, so a run grafts the same weights every time without drawing from
    /// the run's RNG.
    fn attach(&self, plan: &SeedGraft, slot: &Slot) -> Result<GraftedSeed, DeviceError> {
        let refuse = |reason: String| DeviceError::GraftRefused { seed: plan.seed_id.clone(), reason };
        if (plan.inputs, plan.outputs) != (slot.inputs, slot.outputs) {
            return Err(refuse(format!(
                "a {}→{} kernel does not fit slot `{}` ({}→{})",
                plan.inputs, plan.outputs, slot.name, slot.inputs, slot.outputs
            )));
        }
        if let Some(live) = self.state.live_seed() {
            return Err(refuse(format!("slot `{}` holds live seed `{}`", slot.name, live.seed_id)));
        }
        if plan.stage == GraftStage::Fossilized {
            return Err(refuse("a fossilized seed with no parameters here cannot be made up".to_owned()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(graft_key(&plan.seed_id, &self.state.weight));
        let noise = DenseState::initial(slot.inputs, slot.outputs, &mut rng);
        let (weight, bias) = match &self.state.hidden {
            Some(hidden) => (&hidden.weight, &hidden.bias),
            None => (&self.state.weight, &self.state.bias),
        };
        let jitter = |host: &[f32], noise: &[f32]| -> Vec<f32> {
            host.iter().zip(noise).map(|(h, n)| h + SEED_JITTER * n).collect()
        };
        let layer = DenseState {
            weight: jitter(weight, &noise.weight),
            bias: jitter(bias, &noise.bias),
            weight_momentum: noise.weight_momentum,
            bias_momentum: noise.bias_momentum,
        };
        let (stage, alpha, mode) = (plan.stage, served_alpha(plan), plan.mode.clone());
        Ok(GraftedSeed { seed_id: plan.seed_id.clone(), slot: slot.name.to_owned(), stage, alpha, mode, layer })
    }
}

/// Scale of a new seed's jitter around the host layer it copies.
const SEED_JITTER: f32 = 0.1;

/// The alpha a seed's output is taken with: 0 while TRAINING, else the plan's.
pub(super) fn served_alpha(plan: &SeedGraft) -> f32 {
    if plan.stage == GraftStage::Training { 0.0 } else { plan.alpha.clamp(0.0, 1.0) }
}

/// FNV-1a over the seed id and the bits of `weights`.
fn graft_key(seed_id: &str, weights: &[f32]) -> u64 {
    let bytes = seed_id.bytes().chain(weights.iter().flat_map(|w| w.to_bits().to_le_bytes()));
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// `buffer = momentum·buffer + gradient; parameter -= rate·buffer` (PyTorch's SGD).
fn sgd_update(parameters: &mut [f32], buffer: &mut [f32], gradient: &[f32], spec: &ModelSpec) {
    for ((parameter, velocity), grad) in parameters.iter_mut().zip(buffer.iter_mut()).zip(gradient) {
        *velocity = spec.momentum * *velocity + grad;
        *parameter -= spec.learning_rate * *velocity;
    }
}

fn sgd_dense(layer: &mut DenseState, gradient: &(Vec<f32>, Vec<f32>), spec: &ModelSpec) {
    sgd_update(&mut layer.weight, &mut layer.weight_momentum, &gradient.0, spec);
    sgd_update(&mut layer.bias, &mut layer.bias_momentum, &gradient.1, spec);
}

impl Device for Synthetic {
    fn label(&self) -> String {
        "synthetic".to_owned()
    }

    fn train_step(&mut self, batch: &Batch) -> Result<StepOutcome, DeviceError> {
        let (_, loss) = self.forward(batch)?;
        let (mut grads, seed) = self.host_and_seed_grads(batch)?;
        grads.add(&seed);
        let gradient_norm = grads.flat().iter().map(|g| g * g).sum::<f32>().sqrt();
        let spec = self.spec;
        sgd_update(&mut self.state.weight, &mut self.state.weight_momentum, &grads.weight, &spec);
        sgd_update(&mut self.state.bias, &mut self.state.bias_momentum, &grads.bias, &spec);
        if let (Some(layer), Some(gradient)) = (&mut self.state.hidden, &grads.hidden) {
            sgd_dense(layer, gradient, &spec);
        }
        for (seed, gradient) in self.state.seeds.iter_mut().zip(&grads.seeds) {
            sgd_dense(&mut seed.layer, gradient, &spec);
        }
        Ok(StepOutcome { loss, gradient_norm })
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<Evaluation, DeviceError> {
        let (probabilities, loss) = self.forward(batch)?;
        let correct = probabilities
            .chunks_exact(self.spec.classes)
            .zip(&batch.targets)
            .filter(|(row, target)| {
                let best = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (class, &p)| if p > best.1 { (class, p) } else { best });
                best.0 == **target as usize
            })
            .count();
        Ok(Evaluation { loss, accuracy: correct as f32 / batch.len() as f32 })
    }

    fn logits(&mut self, batch: &Batch) -> Result<Vec<f32>, DeviceError> {
        batch.check(self.spec.features, self.spec.classes)?;
        let samples = batch.inputs.chunks_exact(self.spec.features);
        Ok(samples.flat_map(|sample| pass::forward(&self.spec, &self.state, Pass::Served, sample).logits).collect())
    }

    fn snapshot(&self) -> Result<Vec<u8>, DeviceError> {
        Ok(self.state.encode(&self.spec))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DeviceError> {
        self.state = ModelState::decode(snapshot, &self.spec)?;
        Ok(())
    }

    fn gradient_overlap(&self, host: &[f32], seed: &[f32]) -> Result<f64, DeviceError> {
        super::same_length(host, seed)?;
        Ok(crate::kasmina::isolation::gradient_overlap(host, seed))
    }

    fn slots(&self) -> Vec<Slot> {
        vec![self.spec.slot()]
    }

    fn graft(&mut self, plan: &[SeedGraft]) -> Result<GraftReport, DeviceError> {
        let mut report = GraftReport::default();
        let planned = |id: &str| plan.iter().any(|seed| seed.seed_id == id);
        let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut self.state.seeds)
            .into_iter()
            .partition(|seed| seed.stage == GraftStage::Fossilized || planned(&seed.seed_id));
        self.state.seeds = kept;
        report.dropped = dropped.into_iter().map(|seed| seed.seed_id).collect();
        let slot = self.spec.slot();
        for seed_plan in plan {
            let index = self.state.seeds.iter().position(|seed| seed.seed_id == seed_plan.seed_id);
            let result = graft::check_mode(seed_plan).and_then(|()| match index {
                Some(index) => {
                    update(&mut self.state.seeds[index], seed_plan);
                    Ok(())
                }
                None => self.attach(seed_plan, &slot).map(|seed| {
                    report.attached.push((seed.seed_id.clone(), slot.name));
                    self.state.seeds.push(seed);
                }),
            });
            if let Err(error) = result {
                report.refused.push((seed_plan.seed_id.clone(), error.to_string()));
            }
        }
        debug_assert!(self.state.seeds.iter().skip(self.state.fossils()).count() <= 1, "one live seed per slot");
        Ok(report)
    }

    fn gradients(&mut self, batch: &Batch) -> Result<Gradients, DeviceError> {
        let (host, seed) = self.host_and_seed_grads(batch)?;
        Ok(Gradients { host: host.flat(), seed: seed.flat(), host_parameters: self.state.host_parameter_count() })
    }
}

/// A held seed takes the plan's stage, alpha and mode; a fossil stays as it is.
fn update(seed: &mut GraftedSeed, plan: &SeedGraft) {
    if seed.stage == GraftStage::Fossilized {
        return;
    }
    seed.stage = plan.stage;
    seed.alpha = served_alpha(plan);
    seed.mode = plan.mode.clone();
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::tolaria::device::Dataset;

    fn rc1() -> (Synthetic, Dataset) {
        let data = Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42));
        (Synthetic::new(ModelSpec::rc1(), &mut ChaCha8Rng::seed_from_u64(7)), data)
    }

    fn train_epochs(model: &mut Synthetic, data: &Dataset, epochs: usize) -> Vec<f32> {
        let mut losses = Vec::new();
        for _ in 0..epochs {
            for batch in data.batches(4) {
                model.train_step(&batch).expect("train step");
            }
            losses.push(model.evaluate(&data.whole()).expect("evaluate").loss);
        }
        losses
    }

    #[test]
    fn loss_falls_over_three_rc1_epochs_and_reruns_are_bit_identical() {
        let (mut model, data) = rc1();
        let before = model.evaluate(&data.whole()).expect("evaluate").loss;
        let losses = train_epochs(&mut model, &data, 3);
        assert!(before > losses[0] && losses[0] > losses[1] && losses[1] > losses[2], "{before} {losses:?}");
        let (mut again, _) = rc1();
        let rerun = train_epochs(&mut again, &data, 3);
        assert_eq!(
            losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
            rerun.iter().map(|l| l.to_bits()).collect::<Vec<_>>()
        );
    }

    /// The analytic gradient matches central finite differences of the loss.
    #[test]
    fn gradient_matches_finite_differences() {
        let (model, data) = rc1();
        let batch = data.batches(8).next().expect("a batch");
        let spec = ModelSpec { learning_rate: 1.0, momentum: 0.0, ..ModelSpec::rc1() };
        let mut stepped = Synthetic { spec, state: model.state.clone(), host_detached: true };
        stepped.train_step(&batch).expect("step");
        // With rate 1 and no momentum, the update is exactly minus the gradient.
        let analytic: Vec<f32> = model.state.weight.iter().zip(&stepped.state.weight).map(|(a, b)| a - b).collect();
        for (index, expected) in analytic.iter().enumerate() {
            let loss_at = |delta: f32| {
                let mut probe = model.clone();
                probe.state.weight[index] += delta;
                probe.forward(&batch).expect("forward").1
            };
            let numeric = (loss_at(1e-2) - loss_at(-1e-2)) / 2e-2;
            assert!((numeric - expected).abs() < 2e-3, "weight {index}: numeric {numeric} vs analytic {expected}");
        }
    }

    #[test]
    fn restore_brings_back_the_exact_parameters() {
        let (mut model, data) = rc1();
        let snapshot = model.snapshot().expect("snapshot");
        train_epochs(&mut model, &data, 1);
        assert_ne!(model.snapshot().expect("snapshot"), snapshot);
        model.restore(&snapshot).expect("restore");
        assert_eq!(model.snapshot().expect("snapshot"), snapshot);
    }

    #[test]
    fn rejects_malformed_batches_with_typed_errors() {
        let (mut model, _) = rc1();
        let short = Batch { inputs: vec![0.0; 3], targets: vec![0] };
        assert!(matches!(model.train_step(&short), Err(DeviceError::BatchShape { .. })));
        let bad_class = Batch { inputs: vec![0.0; 4], targets: vec![5] };
        assert!(matches!(model.evaluate(&bad_class), Err(DeviceError::TargetOutOfRange { target: 5, classes: 2 })));
    }
}

#[cfg(test)]
#[path = "grafting_tests.rs"]
mod grafting_tests;
