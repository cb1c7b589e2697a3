//! The synthetic classification data every device trains on.
//!
//! Inputs are standard normal; each sample's class is the arg-max of a hidden random
//! linear map of its inputs, so the task is learnable by the linear model (the RC1
//! harness used random labels, which no model can learn — loss could not fall).
//! The data comes from an injected RNG, so it is identical for every device and run.

use rand::Rng;

use super::DeviceError;

/// Samples in row-major order with their target classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: usize,
    inputs: Vec<f32>,
    targets: Vec<u32>,
}

/// A slice of a dataset: `targets.len()` samples of `inputs.len() / targets.len()` features.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Row-major inputs.
    pub inputs: Vec<f32>,
    /// One class per sample.
    pub targets: Vec<u32>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the batch holds no samples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Refuses batches a model of this shape cannot take, before any device sees them.
    pub(super) fn check(&self, features: usize, classes: usize) -> Result<(), DeviceError> {
        if self.is_empty() || self.inputs.len() != self.len() * features {
            return Err(DeviceError::BatchShape { inputs: self.inputs.len(), targets: self.len(), features });
        }
        match self.targets.iter().find(|&&target| target as usize >= classes) {
            Some(&target) => Err(DeviceError::TargetOutOfRange { target, classes }),
            None => Ok(()),
        }
    }
}

impl Dataset {
    /// `samples` samples of `features` standard-normal inputs labelled into `classes`.
    pub fn generate<R: Rng + ?Sized>(samples: usize, features: usize, classes: usize, rng: &mut R) -> Self {
        assert!(features > 0 && classes > 1, "a classification task needs features and two classes");
        let hidden: Vec<f32> = (0..classes * features).map(|_| standard_normal(rng)).collect();
        let inputs: Vec<f32> = (0..samples * features).map(|_| standard_normal(rng)).collect();
        let targets = inputs.chunks_exact(features).map(|sample| hidden_class(&hidden, sample)).collect();
        Self { features, inputs, targets }
    }

    /// A dataset from samples read elsewhere (row-major `inputs`, one target per
    /// sample); refuses inputs that are not a whole number of samples.
    pub fn from_samples(features: usize, inputs: Vec<f32>, targets: Vec<u32>) -> Result<Self, DeviceError> {
        if features == 0 || inputs.len() != targets.len() * features {
            return Err(DeviceError::BatchShape { inputs: inputs.len(), targets: targets.len(), features });
        }
        Ok(Self { features, inputs, targets })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The samples in order (no shuffling, as RC1), `batch_size` at a time; the last
    /// batch may be shorter.
    pub fn batches(&self, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
        assert!(batch_size > 0, "batch size must be positive");
        self.inputs
            .chunks(batch_size * self.features)
            .zip(self.targets.chunks(batch_size))
            .map(|(inputs, targets)| Batch { inputs: inputs.to_vec(), targets: targets.to_vec() })
    }

    /// Every sample as one batch, for evaluation.
    pub fn whole(&self) -> Batch {
        Batch { inputs: self.inputs.clone(), targets: self.targets.clone() }
    }
}

/// Box–Muller from two uniform draws; computed in f64 then rounded once. `libm`,
/// not the platform's maths, so the dataset is the same bits everywhere.
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let uniform_open: f64 = 1.0 - rng.random::<f64>();
    let angle: f64 = rng.random::<f64>() * std::f64::consts::TAU;
    ((-2.0 * libm::log(uniform_open)).sqrt() * libm::cos(angle)) as f32
}

fn hidden_class(hidden: &[f32], sample: &[f32]) -> u32 {
    let scores = hidden.chunks_exact(sample.len()).map(|row| row.iter().zip(sample).map(|(w, x)| w * x).sum::<f32>());
    let mut best = (0_u32, f32::NEG_INFINITY);
    for (class, score) in (0_u32..).zip(scores) {
        if score > best.1 {
            best = (class, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn same_seed_same_data_and_batches_cover_every_sample() {
        let data = Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42));
        assert_eq!(data, Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42)));
        let batches: Vec<Batch> = data.batches(4).collect();
        assert_eq!(batches.len(), 16);
        assert!(batches.iter().all(|batch| batch.len() == 4 && batch.inputs.len() == 16));
        let both_classes = data.targets.contains(&0) && data.targets.contains(&1);
        assert!(both_classes, "labels must not be degenerate: {:?}", data.targets);
        let mean = data.inputs.iter().sum::<f32>() / data.inputs.len() as f32;
        assert!(mean.abs() < 0.3, "inputs should be roughly centred, mean {mean}");
    }
}
