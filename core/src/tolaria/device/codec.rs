//! Snapshot bytes of a [`ModelState`], the same on every device.
//!
//! `ESPRMS01` — RC1's linear host with no seed: the magic, the feature and class
//! counts (u32 LE), then weight, bias and their momentum buffers as f32 LE. Every
//! snapshot taken before seeds existed is of this form, and a seedless RC1 model
//! still writes it, so old checkpoints restore and trace hashes of seedless runs
//! do not move.
//!
//! `ESPRMS02` — any other model: the magic, features, classes, hidden width and
//! seed count (u32 LE); the output layer's four arrays; the hidden layer's four
//! arrays when the width is not 0; then each seed: its id and slot name (u32 LE
//! length, UTF-8), stage and blend-mode tags (u8), alpha (f32), kernel inputs and
//! outputs (u32), CHANNEL gains (one f32 per output) for that mode, and its four
//! arrays.

use super::DeviceError;
use super::graft::{BlendMode, GraftStage};
use super::model_state::{DenseState, GraftedSeed, ModelSpec, ModelState};

const MAGIC_LINEAR: &[u8; 8] = b"ESPRMS01";
const MAGIC_GRAFTED: &[u8; 8] = b"ESPRMS02";
/// Seeds one snapshot may hold: far above Kasmina's 16, low enough that a forged
/// count cannot make the decoder loop for long.
const MAX_SEEDS: usize = 1_024;

fn reject(reason: String) -> DeviceError {
    DeviceError::BadSnapshot { reason }
}

/// The snapshot bytes (see the module docs).
pub(super) fn encode(state: &ModelState, spec: &ModelSpec) -> Vec<u8> {
    debug_assert_eq!(state.weight.len(), spec.classes * spec.head_inputs());
    let mut bytes = Vec::new();
    let linear = state.hidden.is_none() && state.seeds.is_empty();
    bytes.extend_from_slice(if linear { MAGIC_LINEAR } else { MAGIC_GRAFTED });
    for count in [spec.features, spec.classes] {
        put_u32(&mut bytes, count);
    }
    if !linear {
        put_u32(&mut bytes, spec.hidden);
        put_u32(&mut bytes, state.seeds.len());
    }
    put_floats(&mut bytes, [&state.weight, &state.bias, &state.weight_momentum, &state.bias_momentum]);
    if let Some(hidden) = &state.hidden {
        put_dense(&mut bytes, hidden);
    }
    for seed in &state.seeds {
        for text in [&seed.seed_id, &seed.slot] {
            put_u32(&mut bytes, text.len());
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes.extend_from_slice(&[seed.stage.tag(), seed.mode.tag()]);
        bytes.extend_from_slice(&seed.alpha.to_le_bytes());
        put_u32(&mut bytes, seed.layer.weight.len() / seed.layer.outputs().max(1));
        put_u32(&mut bytes, seed.layer.outputs());
        if let BlendMode::Channel { gains } = &seed.mode {
            put_floats(&mut bytes, [gains]);
        }
        put_dense(&mut bytes, &seed.layer);
    }
    bytes
}

fn put_u32(bytes: &mut Vec<u8>, value: usize) {
    debug_assert!(u32::try_from(value).is_ok());
    bytes.extend_from_slice(&(value as u32).to_le_bytes());
}

fn put_floats<'a>(bytes: &mut Vec<u8>, parts: impl IntoIterator<Item = &'a Vec<f32>>) {
    for value in parts.into_iter().flatten() {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
}

fn put_dense(bytes: &mut Vec<u8>, layer: &DenseState) {
    put_floats(bytes, [&layer.weight, &layer.bias, &layer.weight_momentum, &layer.bias_momentum]);
}

/// The `(features, hidden, classes)` a snapshot's header declares.
pub(super) fn shape(bytes: &[u8]) -> Result<(usize, usize, usize), DeviceError> {
    let mut reader = Reader { bytes, at: 0 };
    let magic = reader.take(8)?;
    let grafted = match magic {
        m if m == MAGIC_LINEAR => false,
        m if m == MAGIC_GRAFTED => true,
        _ => return Err(reject("not an Esper model snapshot (bad magic)".to_owned())),
    };
    let (features, classes) = (reader.count()?, reader.count()?);
    let hidden = if grafted { reader.count()? } else { 0 };
    Ok((features, hidden, classes))
}

/// Parses snapshot bytes of a model shaped like `spec`.
pub(super) fn decode(bytes: &[u8], spec: &ModelSpec) -> Result<ModelState, DeviceError> {
    let (features, hidden, classes) = shape(bytes)?;
    if (features, hidden, classes) != (spec.features, spec.hidden, spec.classes) {
        return Err(reject(format!(
            "snapshot is of a {features}→{hidden}→{classes} model, this one is {}→{}→{}",
            spec.features, spec.hidden, spec.classes
        )));
    }
    let grafted = bytes.starts_with(MAGIC_GRAFTED);
    let mut reader = Reader { bytes, at: if grafted { 20 } else { 16 } };
    let seeds = if grafted { reader.count()? } else { 0 };
    if seeds > MAX_SEEDS {
        return Err(reject(format!("{seeds} seeds is more than the {MAX_SEEDS} a snapshot may hold")));
    }
    let head = reader.dense(spec.head_inputs(), classes)?;
    let hidden_layer = if hidden > 0 { Some(reader.dense(features, hidden)?) } else { None };
    let mut state = ModelState {
        weight: head.weight,
        bias: head.bias,
        weight_momentum: head.weight_momentum,
        bias_momentum: head.bias_momentum,
        hidden: hidden_layer,
        seeds: Vec::with_capacity(seeds),
    };
    for _ in 0..seeds {
        state.seeds.push(reader.seed(spec)?);
    }
    if reader.at != bytes.len() {
        return Err(reject(format!("expected {} bytes, found {}", reader.at, bytes.len())));
    }
    Ok(state)
}

/// A cursor that refuses to read past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8], DeviceError> {
        let end = self.at.checked_add(count).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
            reject(format!("expected {} bytes, found {} (too short)", self.at.saturating_add(count), self.bytes.len()))
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn count(&mut self) -> Result<usize, DeviceError> {
        let raw = self.take(4)?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    }

    fn floats(&mut self, count: usize) -> Result<Vec<f32>, DeviceError> {
        let raw = self.take(count.checked_mul(4).ok_or_else(|| reject(format!("{count} floats overflow")))?)?;
        Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn dense(&mut self, inputs: usize, outputs: usize) -> Result<DenseState, DeviceError> {
        let weights = inputs.checked_mul(outputs).ok_or_else(|| reject(format!("{inputs}×{outputs} overflows")))?;
        Ok(DenseState {
            weight: self.floats(weights)?,
            bias: self.floats(outputs)?,
            weight_momentum: self.floats(weights)?,
            bias_momentum: self.floats(outputs)?,
        })
    }

    fn text(&mut self) -> Result<String, DeviceError> {
        let length = self.count()?;
        let raw = self.take(length)?;
        String::from_utf8(raw.to_vec()).map_err(|_| reject("a seed name is not UTF-8".to_owned()))
    }

    fn seed(&mut self, spec: &ModelSpec) -> Result<GraftedSeed, DeviceError> {
        let (seed_id, slot) = (self.text()?, self.text()?);
        let tags = self.take(2)?;
        let (stage_tag, mode_tag) = (tags[0], tags[1]);
        let stage = GraftStage::from_tag(stage_tag).ok_or_else(|| reject(format!("seed stage tag {stage_tag}")))?;
        let alpha = self.floats(1)?[0];
        let (inputs, outputs) = (self.count()?, self.count()?);
        let expected = spec.slot();
        if slot != expected.name || (inputs, outputs) != (expected.inputs, expected.outputs) {
            return Err(reject(format!(
                "seed `{seed_id}` is a {inputs}→{outputs} kernel in slot `{slot}`; this model's slot is `{}` ({}→{})",
                expected.name, expected.inputs, expected.outputs
            )));
        }
        let mode = match mode_tag {
            0 => BlendMode::Convex,
            1 => BlendMode::Residual,
            2 => BlendMode::Channel { gains: self.floats(outputs)? },
            3 => BlendMode::Confidence,
            other => return Err(reject(format!("blend mode tag {other}"))),
        };
        let layer = self.dense(inputs, outputs)?;
        Ok(GraftedSeed { seed_id, slot, stage, alpha, mode, layer })
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
        let bytes = encode(&state, &spec);
        assert!(bytes.starts_with(MAGIC_LINEAR), "a seedless RC1 model keeps the first format");
        assert_eq!(decode(&bytes, &spec).expect("round trip"), state);
        let three = ModelSpec { classes: 3, ..spec };
        let cases: [(Vec<u8>, &str); 4] = [
            (bytes[..10].to_vec(), "too short"),
            ([b"XXXXXXXX", &bytes[8..]].concat(), "bad magic"),
            (bytes[..bytes.len() - 1].to_vec(), "too short"),
            (encode(&ModelState::initial(&three, &mut ChaCha8Rng::seed_from_u64(3)), &three), "4→0→3 model"),
        ];
        for (damaged, reason) in cases {
            let error = decode(&damaged, &spec).expect_err(reason).to_string();
            assert!(error.contains(reason), "{error}");
        }
    }

    #[test]
    fn a_grafted_mlp_round_trips_and_a_forged_seed_is_refused() {
        let spec = ModelSpec::mlp();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut state = ModelState::initial(&spec, &mut rng);
        for (id, stage, mode) in [
            ("seed-1", GraftStage::Fossilized, BlendMode::Channel { gains: vec![0.5, 1.0, 1.5, 2.0] }),
            ("seed-2", GraftStage::Blending, BlendMode::Confidence),
        ] {
            let layer = DenseState::initial(4, 4, &mut rng);
            let seed = GraftedSeed { seed_id: id.into(), slot: "hidden".into(), stage, alpha: 0.4, mode, layer };
            state.seeds.push(seed);
        }
        let bytes = encode(&state, &spec);
        assert_eq!(decode(&bytes, &spec).expect("round trip"), state);
        assert_eq!(shape(&bytes).expect("shape"), (4, 4, 2));
        let mut bad_stage = bytes.clone();
        let stage_at = bytes.len() - 4 * (2 * 20) - 2 * 4 - 4 - 2;
        bad_stage[stage_at] = 9;
        assert!(decode(&bad_stage, &spec).expect_err("stage").to_string().contains("stage tag 9"));
        let mut forged = bytes;
        forged[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&forged, &spec).is_err(), "a forged seed count is refused, not allocated");
    }
}
