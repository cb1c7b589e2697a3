//! What compiling a blueprint means here: build its module on a
//! [`Device`](crate::tolaria::device::Device), run a forward pass over a probe
//! batch, and serialise the module with the probe's result.
//!
//! The module's initial weights and the probe batch are drawn from a ChaCha8
//! stream keyed by the forge seed and the blueprint id, so a blueprint compiles
//! to the same bytes whenever and however often it is compiled (a resumed forge
//! produces what an uninterrupted one would have), and the kernel's SHA-256 — its
//! name in Urza — is stable.
//!
//! Kernel format: magic `ESPRKN01`, blueprint id (u32 LE length, UTF-8), probe loss
//! and accuracy (f32 LE), then the module's `ModelState` bytes.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::karn::Blueprint;
use crate::tolaria::device::{Dataset, DeviceError, DeviceKind, ModelSpec};
use crate::urza::sha256_hex;

/// Leading bytes of every kernel.
pub const KERNEL_MAGIC: &[u8; 8] = b"ESPRKN01";
/// Samples in the probe batch of a compile.
const PROBE_SAMPLES: usize = 32;

/// A compiled kernel: its bytes and the digest of its probe output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledKernel {
    pub bytes: Vec<u8>,
    pub guard_digest: String,
}

/// Why a compile failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("blueprint `{blueprint_id}`: device failed: {source}")]
    Device {
        blueprint_id: String,
        #[source]
        source: DeviceError,
    },
    #[error("blueprint `{blueprint_id}`: the probe forward pass gave a non-finite loss ({loss})")]
    NonFinite { blueprint_id: String, loss: f32 },
    /// A compiler refused the job for a reason of its own (a test's fault plan, a
    /// remote compiler's answer).
    #[error("blueprint `{blueprint_id}`: {reason}")]
    Refused { blueprint_id: String, reason: String },
}

/// Something that compiles blueprints. [`DeviceCompiler`] is the real one; the
/// seam lets tests count compiles and inject failures.
pub trait Compiler {
    /// Compiles `blueprint`.
    fn compile(&mut self, blueprint: &Blueprint) -> Result<CompiledKernel, CompileError>;
}

/// Compiles on a device of `kind` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCompiler {
    kind: DeviceKind,
    seed: u64,
}

impl DeviceCompiler {
    /// A compiler on `kind`; `seed` (from the run's RNG tree) keys every module's weights.
    pub fn new(kind: DeviceKind, seed: u64) -> Self {
        Self { kind, seed }
    }

    /// The blueprint's own stream: SHA-256 of the forge seed and the blueprint id.
    fn stream(&self, blueprint_id: &str) -> ChaCha8Rng {
        let mut hasher = Sha256::new();
        hasher.update(self.seed.to_le_bytes());
        hasher.update(blueprint_id.as_bytes());
        ChaCha8Rng::from_seed(hasher.finalize().into())
    }
}

impl Compiler for DeviceCompiler {
    fn compile(&mut self, blueprint: &Blueprint) -> Result<CompiledKernel, CompileError> {
        let id = blueprint.blueprint_id.as_str();
        let device_error = |source| CompileError::Device { blueprint_id: id.to_owned(), source };
        let spec =
            ModelSpec { features: blueprint.module.inputs, classes: blueprint.module.outputs, ..ModelSpec::rc1() };
        let mut rng = self.stream(id);
        let mut module = self.kind.build(spec, &mut rng).map_err(device_error)?;
        let probe = Dataset::generate(PROBE_SAMPLES, spec.features, spec.classes, &mut rng);
        let forward = module.evaluate(&probe.whole()).map_err(device_error)?;
        if !forward.loss.is_finite() {
            return Err(CompileError::NonFinite { blueprint_id: id.to_owned(), loss: forward.loss });
        }
        let state = module.snapshot().map_err(device_error)?;
        let mut probe_output = Vec::with_capacity(8);
        probe_output.extend_from_slice(&forward.loss.to_le_bytes());
        probe_output.extend_from_slice(&forward.accuracy.to_le_bytes());
        let id_len = u32::try_from(id.len()).unwrap_or(u32::MAX);
        let mut bytes = Vec::with_capacity(KERNEL_MAGIC.len() + 4 + id.len() + probe_output.len() + state.len());
        bytes.extend_from_slice(KERNEL_MAGIC);
        bytes.extend_from_slice(&id_len.to_le_bytes());
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(&probe_output);
        bytes.extend_from_slice(&state);
        Ok(CompiledKernel { guard_digest: sha256_hex(&probe_output), bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::karn::Catalog;
    use crate::tolaria::device::ModelState;

    #[test]
    fn compiles_are_reproducible_per_blueprint_and_carry_the_module() {
        let catalog = Catalog::default_catalog();
        let wide = catalog.iter().find(|b| b.module.inputs == 32).expect("a 32-input blueprint");
        let mut compiler = DeviceCompiler::new(DeviceKind::Synthetic, 7);
        let first = compiler.compile(wide).expect("compiles");
        assert_eq!(compiler.compile(wide).expect("again"), first, "same blueprint, same bytes");
        let other = DeviceCompiler::new(DeviceKind::Synthetic, 8).compile(wide).expect("other seed");
        assert_ne!(other.bytes, first.bytes);
        let header = KERNEL_MAGIC.len() + 4 + wide.blueprint_id.len() + 8;
        assert_eq!(&first.bytes[..8], KERNEL_MAGIC);
        let spec = ModelSpec { features: 32, classes: wide.module.outputs, ..ModelSpec::rc1() };
        let state = ModelState::decode(&first.bytes[header..], &spec).expect("the module's state");
        assert_eq!((state.weight.len() + state.bias.len()) as u64, wide.parameter_count);
        assert_eq!(first.guard_digest, sha256_hex(&first.bytes[header - 8..header]));
    }
}
