//! The registered scenarios: each wires `esper-core` subsystems onto the hosts of
//! an `esper-sim` world, takes its faults from the seed and says what must hold at
//! the end. [`crate::registry`] lists them by name. A few keep their real-profile
//! twin beside them (the prefetch burst, the WAL soak), so both run the same code.

/// Declares `TRACE_TARGET`, the target a scenario module's trace lines carry:
/// `esper_scenarios::` and the module's path from before this directory held
/// the scenarios. A name, not `module_path!()`, so that moving a module leaves its
/// trace lines, and the pinned trace hashes, as they were.
macro_rules! trace_target {
    ($path:literal) => {
        const TRACE_TARGET: &str = concat!("esper_scenarios::", $path);
    };
}

pub mod control_loop;
pub mod heartbeat;
pub mod kasmina_lifecycle;
pub mod kasmina_prefetch;
pub mod nissa;
pub mod oona_bus;
pub mod oona_checks;
pub mod oona_ledger;
pub mod simic;
pub mod tamiyo_risk;
pub mod tezzeret_forge;
pub mod wal_soak;
pub mod weatherlight;
