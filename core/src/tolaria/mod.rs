//! Tolaria, the trainer at the centre of the control loop.
//!
//! Each optimizer step Tolaria trains on a batch, builds a `SystemStatePacket` for
//! Tamiyo, applies the command it gets back through Kasmina, and at the end of each
//! epoch emits telemetry and decides whether the epoch failed. The maths itself runs
//! on a [`device::Device`], so the same trainer drives the pure-Rust synthetic model
//! in the sim and libtorch on CPU or CUDA for real.

pub mod checkpoint;
mod checkpoint_store;
pub mod config;
pub mod device;
pub mod emergency;
mod grafting;
pub mod metrics;
pub mod pace;
pub mod ports;
pub mod rollback;
mod step;
mod trainer;
mod verdict;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
pub use checkpoint_store::{CHECKPOINT_PATH, StorageCheckpoints};
pub use config::{ConfigError, TrainingLoopConfig};
pub use pace::StepPace;
pub use ports::{Collaborators, Peers, Ports};
pub use rollback::RollbackOutcome;
pub use trainer::{EpochFailure, EpochReport, TolariaError, Trainer};
