//! Kasmina, the seed manager: grows seeds (small modules grafted onto the host model)
//! through a checked lifecycle, fades them in with an alpha schedule, and fetches
//! their kernels from Urza over Oona.

pub mod blending;
mod cache;
pub mod lifecycle;
mod manager;
pub mod prefetch;

pub use cache::{KernelCache, LockWaits};
pub use manager::{KasminaConfig, KasminaCounters, KasminaError, SeedManager};
pub use prefetch::{
    Kernel, KernelSource, PrefetchConfig, PrefetchCoordinator, PrefetchCounters, PrefetchOutcome, PrefetchStatus,
};
