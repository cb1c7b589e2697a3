//! What the tests that drive core's storage users directly share: a simulated disk
//! (with `support::runtime::block_on` to drive them on paused time).

use esper_sim::{RngTree, SimDisk, SimDiskConfig};

/// A fault-free simulated disk whose randomness (for faults a test injects later)
/// descends from `seed`.
pub fn disk(seed: u64) -> SimDisk {
    SimDisk::new(SimDiskConfig::default(), RngTree::new(seed).stream("disk"))
}
