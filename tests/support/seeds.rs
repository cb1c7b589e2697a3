//! How many seeds the DST verdicts (`tests/drills.rs`, `tests/determinism.rs`) run.
//!
//! `ESPER_DST_SEEDS=N` lowers every per-scenario and per-drill-family seed count
//! to at most N, so that `ci/mutants` can afford one run of the verdicts per
//! mutant (`docs/mutants.md`). Only these test binaries read it; core
//! and the simulator never see it, and a run is still named by its seed. Unset,
//! each test runs its full count.

/// The variable `ci/mutants` sets.
pub const VARIABLE: &str = "ESPER_DST_SEEDS";

/// `full`, or `ESPER_DST_SEEDS` when that is smaller. A value that is not a
/// positive whole number stops the test: a typo must not quietly run every
/// seed, nor zero seeds (a verdict over nothing).
pub fn dst_seeds(full: u64) -> u64 {
    let Ok(text) = std::env::var(VARIABLE) else { return full };
    match text.parse::<u64>() {
        Ok(count) if count > 0 => count.min(full),
        _ => panic!("{VARIABLE}={text:?} is not a positive whole number of seeds"),
    }
}
