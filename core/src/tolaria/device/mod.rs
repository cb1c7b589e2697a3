//! The device seam: where the maths of training runs.
//!
//! Tolaria is written against [`Device`] only. [`Synthetic`] is a small real model
//! in pure Rust — bit-exact, fast, no native dependencies — and is the default.
//! With the `tch` cargo feature, `TchDevice` runs the same models, seeds grafted
//! the same way, in libtorch on the CPU or a CUDA device. Both start from the same seeded initial weights and train on
//! the same seeded [`Dataset`], so their results can be compared directly, and both
//! snapshot to the same [`ModelState`] bytes, so a checkpoint taken on one restores
//! on the other.

mod codec;
#[cfg(feature = "tch")]
mod cuda;
mod dataset;
mod graft;
mod kind;
mod model_state;
mod pass;
mod synthetic;
#[cfg(feature = "tch")]
mod tch_device;
#[cfg(feature = "tch")]
mod tch_pass;

pub use dataset::{Batch, Dataset};
pub use graft::{
    Activation, BlendMode, CONFIDENCE_K, CONFIDENCE_TAU, Gradients, GraftReport, GraftStage, SeedGraft, Slot,
};
pub use kind::{DeviceKind, cuda_device_count};
pub use model_state::{DenseState, GraftedSeed, ModelSpec, ModelState};
pub use synthetic::Synthetic;
#[cfg(feature = "tch")]
pub use tch_device::TchDevice;

/// What one optimizer step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy over the batch, before the update.
    pub loss: f32,
    /// L2 norm of the gradient over every parameter, before the update.
    pub gradient_norm: f32,
}

/// What an evaluation pass reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Fraction of samples whose arg-max class is the target.
    pub accuracy: f32,
}

/// Why the device could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A batch whose shape does not match the model.
    #[error("batch has {inputs} input values and {targets} targets; the model takes {features} features per sample")]
    BatchShape { inputs: usize, targets: usize, features: usize },
    /// A target class outside the model's classes.
    #[error("target class {target} is out of range for a model with {classes} classes")]
    TargetOutOfRange { target: u32, classes: usize },
    /// Snapshot bytes that are not a model state for this model.
    #[error("model snapshot rejected: {reason}")]
    BadSnapshot { reason: String },
    /// A device name that is not `synthetic`, `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device {0:?}: expected synthetic, cpu, cuda or cuda:N")]
    UnknownDevice(String),
    /// A libtorch device asked of a build without the `tch` feature.
    #[error("device {0} needs libtorch: rebuild with `--features tch` (see ci/setup-libtorch)")]
    NeedsTch(String),
    /// CUDA asked for but not usable here.
    #[error("CUDA device {device} is not available: {reason}")]
    CudaUnavailable { device: String, reason: String },
    /// Host and seed gradients laid over different parameter vectors.
    #[error("host gradient has {host} values and seed gradient {seed}: they must cover the same parameters")]
    GradientLengths { host: usize, seed: usize },
    /// A seed the device cannot graft (shape, slot, blend mode).
    #[error("seed `{seed}` not grafted: {reason}")]
    GraftRefused { seed: String, reason: String },
    /// Something this device does not do (yet).
    #[error("device {device} does not support {what}")]
    Unsupported { device: String, what: &'static str },
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(String),
}

/// Where the maths runs. Every implementation trains the same host models
/// (softmax cross-entropy, SGD with momentum as PyTorch defines it) so that results
/// on different devices are comparable, with Kasmina's seeds grafted into the
/// host's slots (see [`graft`]).
pub trait Device: Send {
    /// `synthetic`, `cpu` or `cuda:N`.
    fn label(&self) -> String;

    /// One SGD step on `batch`; returns the loss and gradient norm before the update.
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutcome, DeviceError>;

    /// Loss and accuracy on `batch`, without changing the model.
    fn evaluate(&mut self, batch: &Batch) -> Result<Evaluation, DeviceError>;

    /// The model's output on `batch` (logits, row-major `samples × classes`), as
    /// [`Device::evaluate`] scores it: what the parity test compares across devices.
    fn logits(&mut self, batch: &Batch) -> Result<Vec<f32>, DeviceError> {
        let _ = batch;
        Err(DeviceError::Unsupported { device: self.label(), what: "reading logits" })
    }

    /// Model and optimizer state, as [`ModelState`] bytes.
    fn snapshot(&self) -> Result<Vec<u8>, DeviceError>;

    /// Replaces model and optimizer state with a snapshot of the same model.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DeviceError>;

    /// Kasmina's host↔seed gradient overlap, Σᵢ |hostᵢ|·|seedᵢ| in f64 (see
    /// [`crate::kasmina::isolation`]), computed where this device computes.
    fn gradient_overlap(&self, host: &[f32], seed: &[f32]) -> Result<f64, DeviceError>;

    /// The host's seed slots; none on a device that cannot graft.
    fn slots(&self) -> Vec<Slot> {
        Vec::new()
    }

    /// Makes the grafted seeds what `plan` says (see [`SeedGraft`]): attaches new
    /// seeds with fresh parameters, updates stages and alphas, drops seeds no longer
    /// planned. A seed that cannot be grafted is reported, not an error. A device
    /// without slots refuses every seed.
    fn graft(&mut self, plan: &[SeedGraft]) -> Result<GraftReport, DeviceError> {
        let refused = plan.iter().map(|seed| (seed.seed_id.clone(), "this device has no seed slots".to_owned()));
        Ok(GraftReport { refused: refused.collect(), ..GraftReport::default() })
    }

    /// The host's and the live seeds' gradients on `batch`, without an update.
    fn gradients(&mut self, batch: &Batch) -> Result<Gradients, DeviceError> {
        let _ = batch;
        Err(DeviceError::Unsupported { device: self.label(), what: "reading gradients" })
    }
}

/// Refuses gradients of different lengths (the overlap would be meaningless).
fn same_length(host: &[f32], seed: &[f32]) -> Result<(), DeviceError> {
    if host.len() == seed.len() {
        Ok(())
    } else {
        Err(DeviceError::GradientLengths { host: host.len(), seed: seed.len() })
    }
}
