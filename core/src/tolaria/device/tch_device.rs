//! The libtorch device (cargo feature `tch`): the host models of [`ModelSpec`] with
//! Kasmina's seeds grafted into their slot, as [`super::Synthetic`] trains them, on
//! the CPU or a CUDA device.
//!
//! The maths is in `tch_pass.rs` (the same three passes and blend as `pass.rs`,
//! autograd for the backward); which seeds are held, and the weights a new seed
//! starts from, are decided by the synthetic device's own reconciliation run on
//! this device's state (see [`TchDevice::graft`](Device::graft)), so both devices
//! graft the same seeds the same way and differ only by floating-point rounding.
//!
//! Determinism: on the CPU, libtorch runs single-threaded here, so a re-run with the
//! same seed gives bit-identical losses. On CUDA, same device + same seed is
//! bit-exact too, with the settings and limits set out in `cuda.rs`; CUDA against
//! the CPU agrees to a tolerance only. Weights start from the same seeded
//! [`ModelState`] as the synthetic device.

use rand::Rng;
use tch::{Device as TorchDevice, Kind, TchError, Tensor};

use super::graft::{self, Gradients, GraftReport, GraftStage, SeedGraft, Slot};
use super::model_state::{DenseState, GraftedSeed};
use super::pass::Pass;
use super::tch_pass::{TorchDense, TorchModel, TorchSeed, cross_entropy, gradients};
use super::{Batch, Device, DeviceError, DeviceKind, Evaluation, ModelSpec, ModelState, StepOutcome, Synthetic};

/// See the module docs.
#[derive(Debug)]
pub struct TchDevice {
    kind: DeviceKind,
    torch: TorchDevice,
    spec: ModelSpec,
    model: TorchModel,
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
        let initial = ModelState::initial(&spec, rng);
        let model = upload(torch, &spec, &initial)?;
        let mut device = Self { kind, torch, spec, model };
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
        self.model = upload(self.torch, &self.spec, initial)?;
        Ok(())
    }

    /// The model's state (parameters, seeds, momentum buffers), copied off the device.
    pub fn state(&self) -> Result<ModelState, DeviceError> {
        let head = download(&self.model.head)?;
        let hidden = self.model.hidden.as_ref().map(download).transpose()?;
        let seeds = self.model.seeds.iter().map(|seed| {
            Ok(GraftedSeed {
                seed_id: seed.seed_id.clone(),
                slot: seed.slot.clone(),
                stage: seed.stage,
                alpha: seed.alpha,
                mode: seed.mode.clone(),
                layer: download(&seed.layer)?,
            })
        });
        Ok(ModelState {
            weight: head.weight,
            bias: head.bias,
            weight_momentum: head.weight_momentum,
            bias_momentum: head.bias_momentum,
            hidden,
            seeds: seeds.collect::<Result<_, DeviceError>>()?,
        })
    }

    /// The synthetic device's update of held seeds (see `synthetic.rs`): a refused
    /// mode is reported, a fossil stays as it is, a live seed takes the plan's
    /// stage, alpha and mode.
    fn update_in_place(&mut self, plan: &[SeedGraft]) -> GraftReport {
        let mut report = GraftReport::default();
        for seed_plan in plan {
            if let Err(error) = graft::check_mode(seed_plan) {
                report.refused.push((seed_plan.seed_id.clone(), error.to_string()));
                continue;
            }
            let held = self.model.seeds.iter_mut().find(|seed| seed.seed_id == seed_plan.seed_id);
            if let Some(seed) = held.filter(|seed| seed.stage != GraftStage::Fossilized) {
                seed.stage = seed_plan.stage;
                seed.alpha = super::synthetic::served_alpha(seed_plan);
                seed.mode = seed_plan.mode.clone();
            }
        }
        report
    }

    fn inputs(&self, batch: &Batch) -> Result<(Tensor, Tensor), DeviceError> {
        batch.check(self.spec.features, self.spec.classes)?;
        let inputs = to_device(self.torch, &batch.inputs, &[batch.len() as i64, self.spec.features as i64])?;
        let targets: Vec<i64> = batch.targets.iter().map(|&target| i64::from(target)).collect();
        Ok((inputs, Tensor::f_from_slice(&targets)?.f_to_device(self.torch)?))
    }

    fn forward(&self, inputs: &Tensor, pass: Pass) -> Result<Tensor, DeviceError> {
        self.model.forward(inputs, pass, self.spec.slot().activation)
    }

    /// The host pass's loss and its gradients for the host parameters, then the
    /// seed pass's gradients for `seed_parameters` (none when no seed is live).
    fn host_and_seed_grads(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        seed_parameters: &[&Tensor],
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>), DeviceError> {
        let host_loss = cross_entropy(&self.forward(inputs, Pass::Host)?, targets)?;
        let host = gradients(&host_loss, &self.model.host_parameters())?;
        let seed = match self.model.live_seed() {
            Some(_) => gradients(&cross_entropy(&self.forward(inputs, Pass::Seed)?, targets)?, seed_parameters)?,
            None => Vec::new(),
        };
        Ok((host_loss, host, seed))
    }
}

/// `values` as a `shape` tensor on `torch`.
fn to_device(torch: TorchDevice, values: &[f32], shape: &[i64]) -> Result<Tensor, DeviceError> {
    Ok(Tensor::f_from_slice(values)?.f_reshape(shape)?.f_to_device(torch)?)
}

/// A dense layer's state as tensors on `torch`; the parameters require grad.
fn upload_dense(torch: TorchDevice, layer: &DenseState) -> Result<TorchDense, DeviceError> {
    let outputs = layer.bias.len() as i64;
    let inputs = (layer.weight.len() / layer.bias.len().max(1)) as i64;
    Ok(TorchDense {
        weight: to_device(torch, &layer.weight, &[outputs, inputs])?.set_requires_grad(true),
        bias: to_device(torch, &layer.bias, &[outputs])?.set_requires_grad(true),
        weight_momentum: to_device(torch, &layer.weight_momentum, &[outputs, inputs])?,
        bias_momentum: to_device(torch, &layer.bias_momentum, &[outputs])?,
    })
}

/// `state` (checked against `spec` by whoever made it) as a model on `torch`.
fn upload(torch: TorchDevice, spec: &ModelSpec, state: &ModelState) -> Result<TorchModel, DeviceError> {
    debug_assert_eq!(state.weight.len(), spec.classes * spec.head_inputs());
    let head = DenseState {
        weight: state.weight.clone(),
        bias: state.bias.clone(),
        weight_momentum: state.weight_momentum.clone(),
        bias_momentum: state.bias_momentum.clone(),
    };
    let seeds = state.seeds.iter().map(|seed| {
        Ok(TorchSeed {
            seed_id: seed.seed_id.clone(),
            slot: seed.slot.clone(),
            stage: seed.stage,
            alpha: seed.alpha,
            mode: seed.mode.clone(),
            layer: upload_dense(torch, &seed.layer)?,
        })
    });
    Ok(TorchModel {
        head: upload_dense(torch, &head)?,
        hidden: state.hidden.as_ref().map(|layer| upload_dense(torch, layer)).transpose()?,
        seeds: seeds.collect::<Result<_, DeviceError>>()?,
    })
}

fn download(layer: &TorchDense) -> Result<DenseState, DeviceError> {
    Ok(DenseState {
        weight: to_vec(&layer.weight)?,
        bias: to_vec(&layer.bias)?,
        weight_momentum: to_vec(&layer.weight_momentum)?,
        bias_momentum: to_vec(&layer.bias_momentum)?,
    })
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

/// One SGD update of `layer` with its weight's and bias's gradients.
fn sgd_dense(spec: &ModelSpec, layer: &mut TorchDense, gradient: &[Tensor]) -> Result<(), DeviceError> {
    debug_assert_eq!(gradient.len(), 2);
    layer.weight_momentum = sgd_update(spec, &mut layer.weight, &layer.weight_momentum, &gradient[0])?;
    layer.bias_momentum = sgd_update(spec, &mut layer.bias, &layer.bias_momentum, &gradient[1])?;
    Ok(())
}

/// `sqrt(Σ gradient²)` over every tensor, summed in order.
fn norm(gradients: &[Tensor]) -> Result<f32, DeviceError> {
    let mut squares = gradients.iter().map(|gradient| gradient.f_square()?.f_sum(Kind::Float));
    let first = squares.next().ok_or_else(|| DeviceError::Torch("a model with no parameters".to_owned()))??;
    let total = squares.try_fold(first, |total, square| total.f_add(&square?))?;
    scalar(&total.f_sqrt()?)
}

/// Each tensor flattened, in order, as one vector.
fn flat(tensors: &[Tensor]) -> Result<Vec<f32>, DeviceError> {
    let mut values = Vec::new();
    for tensor in tensors {
        values.extend(to_vec(tensor)?);
    }
    Ok(values)
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

    /// The host pass and (with a live seed) the seed pass, each differentiated for
    /// its own parameters; the reported loss is the served pass's, which is the
    /// host pass's when no seed is live.
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutcome, DeviceError> {
        let (inputs, targets) = self.inputs(batch)?;
        let live: Vec<&Tensor> = self.model.live_seed().map_or(Vec::new(), |s| vec![&s.layer.weight, &s.layer.bias]);
        let (host_loss, mut grads, seed) = self.host_and_seed_grads(&inputs, &targets, &live)?;
        let loss = if live.is_empty() {
            host_loss
        } else {
            let _no_grad = tch::no_grad_guard();
            cross_entropy(&self.forward(&inputs, Pass::Served)?, &targets)?
        };
        grads.extend(seed);
        let gradient_norm = norm(&grads)?;
        let spec = self.spec;
        let model = &mut self.model;
        let layers = std::iter::once(&mut model.head)
            .chain(model.hidden.as_mut())
            .chain(model.seeds.iter_mut().map(|seed| &mut seed.layer));
        for (layer, gradient) in layers.zip(grads.chunks_exact(2)) {
            sgd_dense(&spec, layer, gradient)?;
        }
        Ok(StepOutcome { loss: scalar(&loss)?, gradient_norm })
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<Evaluation, DeviceError> {
        let _no_grad = tch::no_grad_guard();
        let (inputs, targets) = self.inputs(batch)?;
        let logits = self.forward(&inputs, Pass::Served)?;
        let loss = scalar(&cross_entropy(&logits, &targets)?)?;
        let correct = logits.f_argmax(-1, false)?.f_eq_tensor(&targets)?.f_sum(Kind::Float)?;
        Ok(Evaluation { loss, accuracy: scalar(&correct)? / batch.len() as f32 })
    }

    fn logits(&mut self, batch: &Batch) -> Result<Vec<f32>, DeviceError> {
        let _no_grad = tch::no_grad_guard();
        let (inputs, _) = self.inputs(batch)?;
        to_vec(&self.forward(&inputs, Pass::Served)?)
    }

    fn snapshot(&self) -> Result<Vec<u8>, DeviceError> {
        Ok(self.state()?.encode(&self.spec))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DeviceError> {
        let state = ModelState::decode(snapshot, &self.spec)?;
        self.model = upload(self.torch, &self.spec, &state)?;
        Ok(())
    }

    fn slots(&self) -> Vec<Slot> {
        vec![self.spec.slot()]
    }

    /// Moves stage, alpha and mode in place when the plan holds exactly the seeds
    /// held (the every-step case). Anything else — an attach, a drop — runs the
    /// synthetic device's reconciliation on this device's state and uploads the
    /// result, so a new seed starts from the weights it would start from there.
    fn graft(&mut self, plan: &[SeedGraft]) -> Result<GraftReport, DeviceError> {
        let held = |id: &str| self.model.seeds.iter().any(|seed| seed.seed_id == id);
        let planned = |id: &str| plan.iter().any(|seed| seed.seed_id == id);
        let same_seeds = plan.iter().all(|seed| held(&seed.seed_id))
            && self.model.seeds.iter().all(|seed| seed.stage == GraftStage::Fossilized || planned(&seed.seed_id));
        if same_seeds {
            return Ok(self.update_in_place(plan));
        }
        let mut synthetic = Synthetic::from_state(self.spec, self.state()?);
        let report = synthetic.graft(plan)?;
        self.model = upload(self.torch, &self.spec, synthetic.state())?;
        Ok(report)
    }

    /// Host gradients over every parameter (zero on the live seed's), and the
    /// seed pass's over every parameter too: autograd finds the detached host
    /// parameters unreached and they read zero, so a leak would show here.
    fn gradients(&mut self, batch: &Batch) -> Result<Gradients, DeviceError> {
        let (inputs, targets) = self.inputs(batch)?;
        let parameters = self.model.parameters();
        let (_, host, seed) = self.host_and_seed_grads(&inputs, &targets, &parameters)?;
        let total: usize = parameters.iter().map(|parameter| parameter.numel()).sum();
        let mut host = flat(&host)?;
        let host_parameters = host.len();
        host.resize(total, 0.0);
        let seed = if seed.is_empty() { vec![0.0; total] } else { flat(&seed)? };
        Ok(Gradients { host, seed, host_parameters })
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
