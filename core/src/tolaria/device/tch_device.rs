//! The libtorch device (cargo feature `tch`): the same linear classifier as
//! [`super::Synthetic`], on the CPU or a CUDA device.
//!
//! Determinism: on the CPU, libtorch runs single-threaded here, so a re-run with the
//! same seed gives bit-identical losses. On CUDA, same device + same seed is
//! bit-exact too, with the settings and limits set out in `cuda.rs`; CUDA against
//! the CPU agrees to a tolerance only. Weights start from the same seeded [`ModelState`] as the synthetic device, so the
//! two differ only by floating-point rounding order.

use rand::Rng;
use tch::{Device as TorchDevice, Kind, TchError, Tensor};

use super::{Batch, Device, DeviceError, DeviceKind, Evaluation, ModelSpec, ModelState, StepOutcome};

/// See the module docs.
#[derive(Debug)]
pub struct TchDevice {
    kind: DeviceKind,
    torch: TorchDevice,
    spec: ModelSpec,
    weight: Tensor,
    bias: Tensor,
    weight_momentum: Tensor,
    bias_momentum: Tensor,
}

impl From<TchError> for DeviceError {
    fn from(error: TchError) -> Self {
        Self::Torch(error.to_string())
    }
}

impl TchDevice {
    /// The model of `spec` on `kind` (`cpu` or `cuda:N`), weights drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(kind: DeviceKind, spec: ModelSpec, rng: &mut R) -> Result<Self, DeviceError> {
        let torch = match kind {
            DeviceKind::Cpu => {
                tch::set_num_threads(1);
                TorchDevice::Cpu
            }
            DeviceKind::Cuda(index) => {
                super::cuda::load(index)?;
                TorchDevice::Cuda(index)
            }
            DeviceKind::Synthetic => {
                return Err(DeviceError::UnknownDevice("synthetic is not a libtorch device".into()));
            }
        };
        let empty = || Tensor::zeros([0], (Kind::Float, TorchDevice::Cpu));
        let mut device = Self {
            kind,
            torch,
            spec,
            weight: empty(),
            bias: empty(),
            weight_momentum: empty(),
            bias_momentum: empty(),
        };
        let initial = ModelState::initial(&spec, rng);
        device.load(&initial)?;
        if matches!(kind, DeviceKind::Cuda(_)) {
            device.warm_up(&initial)?;
        }
        Ok(device)
    }

    /// CUDA loads kernel modules lazily and creates its cuBLAS handle on the first
    /// GEMM: a one-off cost, tens to hundreds of milliseconds, that would otherwise be
    /// charged to the first epoch. One step and one evaluation on a zero sample pay it
    /// here; the model is then put back to `initial` exactly.
    fn warm_up(&mut self, initial: &ModelState) -> Result<(), DeviceError> {
        let zero = Batch { inputs: vec![0.0; self.spec.features], targets: vec![0] };
        self.train_step(&zero)?;
        self.evaluate(&zero)?;
        self.load(initial)
    }

    fn tensor(&self, values: &[f32], shape: &[i64]) -> Result<Tensor, DeviceError> {
        Ok(Tensor::f_from_slice(values)?.f_reshape(shape)?.f_to_device(self.torch)?)
    }

    fn load(&mut self, state: &ModelState) -> Result<(), DeviceError> {
        if state.hidden.is_some() || !state.seeds.is_empty() {
            let what = "an MLP host or grafted seeds (issue 24's tch step)";
            return Err(DeviceError::Unsupported { device: self.kind.to_string(), what });
        }
        let (classes, features) = (self.spec.classes as i64, self.spec.features as i64);
        self.weight = self.tensor(&state.weight, &[classes, features])?.set_requires_grad(true);
        self.bias = self.tensor(&state.bias, &[classes])?.set_requires_grad(true);
        self.weight_momentum = self.tensor(&state.weight_momentum, &[classes, features])?;
        self.bias_momentum = self.tensor(&state.bias_momentum, &[classes])?;
        Ok(())
    }

    fn inputs(&self, batch: &Batch) -> Result<(Tensor, Tensor), DeviceError> {
        batch.check(self.spec.features, self.spec.classes)?;
        let inputs = self.tensor(&batch.inputs, &[batch.len() as i64, self.spec.features as i64])?;
        let targets: Vec<i64> = batch.targets.iter().map(|&target| i64::from(target)).collect();
        Ok((inputs, Tensor::f_from_slice(&targets)?.f_to_device(self.torch)?))
    }

    fn logits(&self, inputs: &Tensor) -> Result<Tensor, DeviceError> {
        Ok(inputs.f_matmul(&self.weight.f_tr()?)?.f_add(&self.bias)?)
    }
}

/// `buffer = momentum·buffer + gradient; parameter -= rate·buffer`, outside autograd;
/// returns the new buffer.
fn sgd_update(
    spec: &ModelSpec,
    parameter: &mut Tensor,
    buffer: &Tensor,
    gradient: &Tensor,
) -> Result<Tensor, DeviceError> {
    let _no_grad = tch::no_grad_guard();
    let next = buffer.f_mul_scalar(f64::from(spec.momentum))?.f_add(gradient)?;
    let _updated = parameter.f_sub_(&next.f_mul_scalar(f64::from(spec.learning_rate))?)?;
    Ok(next)
}

/// Mean softmax cross-entropy, as `Tensor::cross_entropy_for_logits` but fallible.
fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor, DeviceError> {
    Ok(logits.f_log_softmax(-1, Kind::Float)?.f_nll_loss(targets, None::<Tensor>, tch::Reduction::Mean, -100)?)
}

fn to_vec(tensor: &Tensor) -> Result<Vec<f32>, DeviceError> {
    let flat = tensor.f_detach()?.f_to_device(TorchDevice::Cpu)?.f_flatten(0, -1)?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

fn scalar(tensor: &Tensor) -> Result<f32, DeviceError> {
    Ok(f64::try_from(tensor.f_detach()?.f_to_device(TorchDevice::Cpu)?)? as f32)
}

impl Device for TchDevice {
    fn label(&self) -> String {
        self.kind.to_string()
    }

    fn train_step(&mut self, batch: &Batch) -> Result<StepOutcome, DeviceError> {
        let (inputs, targets) = self.inputs(batch)?;
        let loss = cross_entropy(&self.logits(&inputs)?, &targets)?;
        self.weight.zero_grad();
        self.bias.zero_grad();
        loss.f_backward()?;
        let (weight_gradient, bias_gradient) = (self.weight.f_grad()?, self.bias.f_grad()?);
        let squared =
            weight_gradient.f_square()?.f_sum(Kind::Float)?.f_add(&bias_gradient.f_square()?.f_sum(Kind::Float)?)?;
        let gradient_norm = scalar(&squared.f_sqrt()?)?;
        self.weight_momentum = sgd_update(&self.spec, &mut self.weight, &self.weight_momentum, &weight_gradient)?;
        self.bias_momentum = sgd_update(&self.spec, &mut self.bias, &self.bias_momentum, &bias_gradient)?;
        Ok(StepOutcome { loss: scalar(&loss)?, gradient_norm })
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<Evaluation, DeviceError> {
        let _no_grad = tch::no_grad_guard();
        let (inputs, targets) = self.inputs(batch)?;
        let logits = self.logits(&inputs)?;
        let loss = scalar(&cross_entropy(&logits, &targets)?)?;
        let correct = logits.f_argmax(-1, false)?.f_eq_tensor(&targets)?.f_sum(Kind::Float)?;
        Ok(Evaluation { loss, accuracy: scalar(&correct)? / batch.len() as f32 })
    }

    fn snapshot(&self) -> Result<Vec<u8>, DeviceError> {
        let state = ModelState {
            weight: to_vec(&self.weight)?,
            bias: to_vec(&self.bias)?,
            weight_momentum: to_vec(&self.weight_momentum)?,
            bias_momentum: to_vec(&self.bias_momentum)?,
            hidden: None,
            seeds: Vec::new(),
        };
        Ok(state.encode(&self.spec))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DeviceError> {
        let state = ModelState::decode(snapshot, &self.spec)?;
        self.load(&state)
    }

    /// The same sum as the pure-Rust check, on this device's tensors: both
    /// gradients go to the device as f64, `(|host| * |seed|).sum()` runs there,
    /// and only the scalar comes back.
    fn gradient_overlap(&self, host: &[f32], seed: &[f32]) -> Result<f64, DeviceError> {
        super::same_length(host, seed)?;
        let _no_grad = tch::no_grad_guard();
        let magnitude = |gradient: &[f32]| -> Result<Tensor, DeviceError> {
            Ok(Tensor::f_from_slice(gradient)?.f_to_device(self.torch)?.f_to_kind(Kind::Double)?.f_abs()?)
        };
        let overlap = magnitude(host)?.f_mul(&magnitude(seed)?)?.f_sum(Kind::Double)?;
        Ok(f64::try_from(overlap.f_to_device(TorchDevice::Cpu)?)?)
    }
}
