//! Kasmina, the seed manager: grows seeds (small modules grafted onto the host model)
//! through a checked lifecycle and fades them in with an alpha schedule.

pub mod blending;
pub mod lifecycle;
mod manager;

pub use manager::{KasminaConfig, KasminaCounters, KasminaError, SeedManager};
