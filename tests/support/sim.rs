//! What the tests that drive core's storage users directly share: a simulated disk
//! and a paused current-thread runtime (timers jump to their deadline, so a backoff
//! or a group-commit delay costs no wall time).

use esper_sim::{RngTree, SimDisk, SimDiskConfig};

/// Runs `future` to completion on a paused current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
    runtime.expect("runtime").block_on(future)
}

/// A fault-free simulated disk whose randomness (for faults a test injects later)
/// descends from `seed`.
pub fn disk(seed: u64) -> SimDisk {
    SimDisk::new(SimDiskConfig::default(), RngTree::new(seed).stream("disk"))
}
