//! Simic, offline policy improvement: learns Tamiyo's germination head
//! ([`crate::tamiyo::learned`]) from Tamiyo's field reports with PPO, validates
//! the result, and publishes it on Oona's policy stream only if it passed.
//!
//! [`replay`] turns field reports into experiences (features, blueprint, reward,
//! the probability the behaviour policy chose it with) in a bounded buffer with a
//! TTL; [`ppo`] runs clipped-surrogate PPO iterations over it (analytic gradients
//! of a linear softmax and a linear critic, plain `f32`, minibatches shuffled by
//! the injected seeded RNG — so a run is bit-for-bit repeatable); [`validation`]
//! applies Esper-Lite's gate; [`trainer`] ties them together, reports
//! `simic.training.{reward,loss,iterations}` and `simic.validation.pass`, and
//! publishes a `PolicyUpdate` for a head that passed.

pub mod ppo;
pub mod replay;
pub mod trainer;
pub mod validation;

pub use ppo::{IterationStats, PpoConfig};
pub use replay::{Experience, ReplayBuffer, reward_of};
pub use trainer::{Publication, Simic, SimicConfig, SimicError, TrainingRun};
pub use validation::{Validation, validate};
