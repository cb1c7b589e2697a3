//! The model every device trains, and its portable snapshot format.

use rand::Rng;

use super::DeviceError;

/// Shape and optimiser settings of the linear classifier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    /// Input features per sample.
    pub features: usize,
    /// Output classes.
    pub classes: usize,
    /// SGD learning rate.
    pub learning_rate: f32,
    /// SGD momentum (PyTorch's definition; 0 disables it).
    pub momentum: f32,
}

impl ModelSpec {
    /// The RC1 workload: `Linear(4 → 2)`, SGD with learning rate 0.01.
    pub const fn rc1() -> Self {
        Self { features: 4, classes: 2, learning_rate: 0.01, momentum: 0.0 }
    }
}

/// Weights, bias and their momentum buffers, as plain `f32`s.
///
/// Encoded as the magic `ESPRMS01`, the feature and class counts (u32 LE), then the
/// four arrays as f32 LE. Every device snapshots to this, so a snapshot taken on one
/// device restores on any other.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelState {
    /// `classes × features`, row-major.
    pub weight: Vec<f32>,
    /// One per class.
    pub bias: Vec<f32>,
    /// Momentum buffer of `weight`.
    pub weight_momentum: Vec<f32>,
    /// Momentum buffer of `bias`.
    pub bias_momentum: Vec<f32>,
}

const MAGIC: &[u8; 8] = b"ESPRMS01";
const HEADER_BYTES: usize = MAGIC.len() + 8;

impl ModelState {
    /// PyTorch's `nn.Linear` initialisation: every parameter uniform in ±1/√features.
    pub fn initial<R: Rng + ?Sized>(spec: &ModelSpec, rng: &mut R) -> Self {
        let bound = 1.0 / (spec.features as f32).sqrt();
        let mut uniform = |count: usize| -> Vec<f32> { (0..count).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = uniform(spec.classes * spec.features);
        let bias = uniform(spec.classes);
        Self { weight_momentum: vec![0.0; weight.len()], bias_momentum: vec![0.0; bias.len()], weight, bias }
    }

    /// The snapshot bytes.
    pub fn encode(&self, spec: &ModelSpec) -> Vec<u8> {
        debug_assert_eq!(self.weight.len(), spec.classes * spec.features);
        let floats = [&self.weight, &self.bias, &self.weight_momentum, &self.bias_momentum];
        let mut bytes = Vec::with_capacity(HEADER_BYTES + 4 * floats.iter().map(|part| part.len()).sum::<usize>());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(spec.features as u32).to_le_bytes());
        bytes.extend_from_slice(&(spec.classes as u32).to_le_bytes());
        for value in floats.into_iter().flatten() {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// The `(features, classes)` shape a snapshot's header declares.
    pub fn shape(bytes: &[u8]) -> Result<(usize, usize), DeviceError> {
        let reject = |reason: String| DeviceError::BadSnapshot { reason };
        let header = bytes.get(..HEADER_BYTES).ok_or_else(|| reject(format!("{} bytes is too short", bytes.len())))?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(reject("not an Esper model snapshot (bad magic)".to_owned()));
        }
        let field = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        Ok((field(8) as usize, field(12) as usize))
    }

    /// Parses snapshot bytes of a model shaped like `spec`.
    pub fn decode(bytes: &[u8], spec: &ModelSpec) -> Result<Self, DeviceError> {
        let reject = |reason: String| DeviceError::BadSnapshot { reason };
        let (features, classes) = Self::shape(bytes)?;
        if (features, classes) != (spec.features, spec.classes) {
            return Err(reject(format!(
                "snapshot is of a {features}→{classes} model, this one is {}→{}",
                spec.features, spec.classes
            )));
        }
        let parameters = classes * features + classes;
        let body = &bytes[HEADER_BYTES..];
        if body.len() != 2 * parameters * 4 {
            return Err(reject(format!("expected {} bytes of parameters, found {}", 2 * parameters * 4, body.len())));
        }
        let mut values = body.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        let mut take = |count: usize| -> Vec<f32> { values.by_ref().take(count).collect() };
        Ok(Self {
            weight: take(classes * features),
            bias: take(classes),
            weight_momentum: take(classes * features),
            bias_momentum: take(classes),
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn snapshot_round_trips_and_rejects_damage_with_reasons() {
        let spec = ModelSpec::rc1();
        let state = ModelState::initial(&spec, &mut ChaCha8Rng::seed_from_u64(3));
        let bytes = state.encode(&spec);
        assert_eq!(ModelState::decode(&bytes, &spec).expect("round trip"), state);
        let cases: [(Vec<u8>, &str); 4] = [
            (bytes[..10].to_vec(), "too short"),
            ([b"XXXXXXXX", &bytes[8..]].concat(), "bad magic"),
            (bytes[..bytes.len() - 1].to_vec(), "expected"),
            (
                ModelState::initial(&ModelSpec { classes: 3, ..spec }, &mut ChaCha8Rng::seed_from_u64(3))
                    .encode(&ModelSpec { classes: 3, ..spec }),
                "4→3 model",
            ),
        ];
        for (damaged, reason) in cases {
            let error = ModelState::decode(&damaged, &spec).expect_err(reason).to_string();
            assert!(error.contains(reason), "{error}");
        }
    }
}
