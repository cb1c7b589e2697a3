//! The pure-Rust device: a linear softmax classifier trained by SGD, in `f32`.
//!
//! Straight-line loops in a fixed order, so the same inputs give the same bits on
//! every run; that is what lets the sim hash a training run.

use rand::Rng;

use super::{Batch, Device, DeviceError, Evaluation, ModelSpec, ModelState, StepOutcome};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Synthetic {
    spec: ModelSpec,
    state: ModelState,
}

impl Synthetic {
    /// A fresh model with PyTorch-style initial weights drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(spec: ModelSpec, rng: &mut R) -> Self {
        Self { state: ModelState::initial(&spec, rng), spec }
    }

    /// Softmax probabilities, row-major `samples × classes`, and the mean loss.
    fn forward(&self, batch: &Batch) -> Result<(Vec<f32>, f32), DeviceError> {
        let (features, classes) = (self.spec.features, self.spec.classes);
        batch.check(features, classes)?;
        let mut probabilities = Vec::with_capacity(batch.len() * classes);
        let mut loss_sum = 0.0_f32;
        for (sample, &target) in batch.inputs.chunks_exact(features).zip(&batch.targets) {
            let logits: Vec<f32> = self
                .state
                .weight
                .chunks_exact(features)
                .zip(&self.state.bias)
                .map(|(row, bias)| bias + row.iter().zip(sample).map(|(w, x)| w * x).sum::<f32>())
                .collect();
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exponentials: Vec<f32> = logits.iter().map(|logit| libm::expf(logit - max)).collect();
            let total: f32 = exponentials.iter().sum();
            loss_sum += libm::logf(total) - (logits[target as usize] - max);
            probabilities.extend(exponentials.iter().map(|value| value / total));
        }
        Ok((probabilities, loss_sum / batch.len() as f32))
    }
}

/// `buffer = momentum·buffer + gradient; parameter -= rate·buffer` (PyTorch's SGD).
fn sgd_update(parameters: &mut [f32], buffer: &mut [f32], gradient: &[f32], spec: &ModelSpec) {
    for ((parameter, velocity), grad) in parameters.iter_mut().zip(buffer.iter_mut()).zip(gradient) {
        *velocity = spec.momentum * *velocity + grad;
        *parameter -= spec.learning_rate * *velocity;
    }
}

impl Device for Synthetic {
    fn label(&self) -> String {
        "synthetic".to_owned()
    }

    fn train_step(&mut self, batch: &Batch) -> Result<StepOutcome, DeviceError> {
        let (features, classes) = (self.spec.features, self.spec.classes);
        let (probabilities, loss) = self.forward(batch)?;
        let scale = 1.0 / batch.len() as f32;
        let mut weight_gradient = vec![0.0_f32; classes * features];
        let mut bias_gradient = vec![0.0_f32; classes];
        for ((sample, &target), row) in
            batch.inputs.chunks_exact(features).zip(&batch.targets).zip(probabilities.chunks_exact(classes))
        {
            for (class, probability) in row.iter().enumerate() {
                let delta = (probability - if class == target as usize { 1.0 } else { 0.0 }) * scale;
                bias_gradient[class] += delta;
                let gradient_row = &mut weight_gradient[class * features..(class + 1) * features];
                for (gradient, x) in gradient_row.iter_mut().zip(sample) {
                    *gradient += delta * x;
                }
            }
        }
        let gradient_norm = weight_gradient.iter().chain(&bias_gradient).map(|g| g * g).sum::<f32>().sqrt();
        sgd_update(&mut self.state.weight, &mut self.state.weight_momentum, &weight_gradient, &self.spec);
        sgd_update(&mut self.state.bias, &mut self.state.bias_momentum, &bias_gradient, &self.spec);
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
        let mut stepped = Synthetic { spec, state: model.state.clone() };
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
