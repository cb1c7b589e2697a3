//! Kasmina, the seed manager: grows seeds (small modules grafted onto the host model)
//! through a checked, gated lifecycle, fades them in with an alpha schedule, checks
//! their gradient isolation, takes signed commands only, and fetches their kernels
//! from Urza over Oona.

pub mod blending;
mod cache;
mod commands;
pub mod gates;
pub mod isolation;
pub mod lifecycle;
mod manager;
mod port;
pub mod prefetch;
pub mod telemetry;

pub use cache::{KernelCache, LockWaits};
pub use commands::{CommandIntake, IntakeCounters};
pub use manager::{KasminaConfig, KasminaCounters, KasminaError, SeedManager};
pub use port::PrefetchingKasmina;
pub use prefetch::{
    Kernel, KernelSource, PrefetchConfig, PrefetchCoordinator, PrefetchCounters, PrefetchOutcome, PrefetchStatus,
};
