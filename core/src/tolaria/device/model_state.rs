//! The model every device trains, and the state a snapshot carries.
//!
//! Two hosts: RC1's `Linear(features → classes)`, whose one slot `head` wraps that
//! layer, and the default MLP `Linear(features → hidden)`, tanh, `Linear(hidden →
//! classes)`, whose one slot `hidden` wraps its hidden layer (see [`super::graft`]).
//! The bytes are in `codec.rs`.

use rand::Rng;

use super::graft::{Activation, BlendMode, GraftStage, Slot};

/// Shape and optimiser settings of the host model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    /// Input features per sample.
    pub features: usize,
    /// Width of the hidden layer; 0 for RC1's single linear layer.
    pub hidden: usize,
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
        Self { features: 4, hidden: 0, classes: 2, learning_rate: 0.01, momentum: 0.0 }
    }

    /// The default host: `Linear(4 → 4)`, tanh, `Linear(4 → 2)`, SGD 0.05 with
    /// momentum 0.9. Its slot takes 4 → 4 kernels (Karn's `residual_mlp_small`, BP002).
    pub const fn mlp() -> Self {
        Self { features: 4, hidden: 4, classes: 2, learning_rate: 0.05, momentum: 0.9 }
    }

    /// Inputs of the output layer: the hidden width, or the features for RC1.
    pub fn head_inputs(&self) -> usize {
        if self.hidden == 0 { self.features } else { self.hidden }
    }

    /// The host's one seed slot: around the output layer for RC1, around the
    /// hidden layer for the MLP.
    pub fn slot(&self) -> Slot {
        if self.hidden == 0 {
            Slot { name: "head", inputs: self.features, outputs: self.classes, activation: Activation::Identity }
        } else {
            Slot { name: "hidden", inputs: self.features, outputs: self.hidden, activation: Activation::Tanh }
        }
    }
}

/// A dense layer `inputs → outputs` and the momentum buffers of its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseState {
    /// `outputs × inputs`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub weight_momentum: Vec<f32>,
    pub bias_momentum: Vec<f32>,
}

impl DenseState {
    /// PyTorch's `nn.Linear` initialisation: every parameter uniform in ±1/√inputs.
    pub fn initial<R: Rng + ?Sized>(inputs: usize, outputs: usize, rng: &mut R) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut uniform = |count: usize| -> Vec<f32> { (0..count).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = uniform(outputs * inputs);
        let bias = uniform(outputs);
        Self { weight_momentum: vec![0.0; weight.len()], bias_momentum: vec![0.0; bias.len()], weight, bias }
    }

    pub(super) fn outputs(&self) -> usize {
        self.bias.len()
    }
}

/// A seed grafted into a slot: its kernel's parameters and optimizer state.
#[derive(Debug, Clone, PartialEq)]
pub struct GraftedSeed {
    pub seed_id: String,
    /// The slot's name.
    pub slot: String,
    pub stage: GraftStage,
    /// The blend alpha the model's output uses (0 while TRAINING).
    pub alpha: f32,
    pub mode: BlendMode,
    pub layer: DenseState,
}

/// The host's parameters (output layer flat, hidden layer if any), the seeds in
/// its slot — fossils first, in the order they fossilized, then at most one live
/// seed — and every momentum buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelState {
    /// `classes × head_inputs`, row-major.
    pub weight: Vec<f32>,
    /// One per class.
    pub bias: Vec<f32>,
    /// Momentum buffer of `weight`.
    pub weight_momentum: Vec<f32>,
    /// Momentum buffer of `bias`.
    pub bias_momentum: Vec<f32>,
    /// The MLP's hidden layer; `None` for RC1.
    pub hidden: Option<DenseState>,
    pub seeds: Vec<GraftedSeed>,
}

impl ModelState {
    /// Initial weights drawn from `rng`, PyTorch-style: the output layer first (so
    /// RC1 draws exactly what it always drew), then the hidden layer.
    pub fn initial<R: Rng + ?Sized>(spec: &ModelSpec, rng: &mut R) -> Self {
        let head = DenseState::initial(spec.head_inputs(), spec.classes, rng);
        let hidden = (spec.hidden > 0).then(|| DenseState::initial(spec.features, spec.hidden, rng));
        Self {
            weight: head.weight,
            bias: head.bias,
            weight_momentum: head.weight_momentum,
            bias_momentum: head.bias_momentum,
            hidden,
            seeds: Vec::new(),
        }
    }

    /// The live seed (TRAINING or BLENDING), which is always last.
    pub fn live_seed(&self) -> Option<&GraftedSeed> {
        self.seeds.last().filter(|seed| seed.stage != GraftStage::Fossilized)
    }

    /// How many seeds are fossilized (they lead the list).
    pub fn fossils(&self) -> usize {
        self.seeds.iter().take_while(|seed| seed.stage == GraftStage::Fossilized).count()
    }

    /// Parameters that belong to the host: output layer, hidden layer, fossils.
    pub fn host_parameter_count(&self) -> usize {
        let dense = |layer: &DenseState| layer.weight.len() + layer.bias.len();
        let fossils: usize = self.seeds[..self.fossils()].iter().map(|seed| dense(&seed.layer)).sum();
        self.weight.len() + self.bias.len() + self.hidden.as_ref().map_or(0, dense) + fossils
    }

    /// The `(features, hidden, classes)` a snapshot's header declares.
    pub fn shape(bytes: &[u8]) -> Result<(usize, usize, usize), super::DeviceError> {
        super::codec::shape(bytes)
    }

    /// The snapshot bytes.
    pub fn encode(&self, spec: &ModelSpec) -> Vec<u8> {
        super::codec::encode(self, spec)
    }

    /// Parses snapshot bytes of a model shaped like `spec`.
    pub fn decode(bytes: &[u8], spec: &ModelSpec) -> Result<Self, super::DeviceError> {
        super::codec::decode(bytes, spec)
    }
}
