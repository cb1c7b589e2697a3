//! The fast rollback tier: recent model snapshots kept in memory.
//!
//! Restoring from here is a memcpy, so a rollback that hits the cache finishes well
//! inside its deadline; a miss falls back to the checkpoint on storage. The cache is
//! bounded in bytes (Esper-Lite's `TOLARIA_ROLLBACK_FAST_CAP_MB`, 32 MiB by default)
//! and evicts the oldest step first.

use std::collections::BTreeMap;

/// Default capacity: 32 MiB.
pub const FAST_CACHE_DEFAULT_BYTES: usize = 32 * 1024 * 1024;

/// Snapshots by global step; see the module docs.
#[derive(Debug, Clone)]
pub struct FastCache {
    capacity_bytes: usize,
    size_bytes: usize,
    snapshots: BTreeMap<u64, Vec<u8>>,
}

impl FastCache {
    /// An empty cache holding at most `capacity_bytes` of snapshots.
    pub fn new(capacity_bytes: usize) -> Self {
        Self { capacity_bytes, size_bytes: 0, snapshots: BTreeMap::new() }
    }

    /// Keeps `snapshot` as the state at `step`, replacing any earlier one at that
    /// step and evicting the oldest steps to stay within capacity; returns whether
    /// it was kept. A snapshot larger than the whole cache is not — and neither
    /// is any state held for `step` or before: a rollback to `step` or later
    /// would otherwise restore one of those older states in place of the one
    /// refused (a model that has grown by a graft would come back without it),
    /// where a miss goes to the checkpoint, which has the right state.
    pub fn insert(&mut self, step: u64, snapshot: Vec<u8>) -> bool {
        if snapshot.len() > self.capacity_bytes {
            let later = step.checked_add(1).map_or_else(BTreeMap::new, |next| self.snapshots.split_off(&next));
            let superseded = std::mem::replace(&mut self.snapshots, later);
            self.size_bytes -= superseded.values().map(Vec::len).sum::<usize>();
            return false;
        }
        if let Some(previous) = self.snapshots.remove(&step) {
            self.size_bytes -= previous.len();
        }
        self.size_bytes += snapshot.len();
        self.snapshots.insert(step, snapshot);
        while self.size_bytes > self.capacity_bytes {
            let Some((_, evicted)) = self.snapshots.pop_first() else { break };
            self.size_bytes -= evicted.len();
        }
        // The accounting the bound rests on, checked wherever debug assertions are
        // on — every simulated run of the tests and drills, which insert, replace
        // and evict far more often than a unit test does.
        debug_assert!(self.size_bytes <= self.capacity_bytes);
        debug_assert_eq!(self.size_bytes, self.snapshots.values().map(Vec::len).sum::<usize>());
        true
    }

    /// Bytes held now, at most the capacity.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// The newest snapshot taken at or before `step`.
    pub fn nearest_at_or_before(&self, step: u64) -> Option<(u64, &[u8])> {
        self.snapshots.range(..=step).next_back().map(|(&at, bytes)| (at, bytes.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_earlier_step_and_evicts_oldest_within_capacity() {
        let mut cache = FastCache::new(30);
        for step in [10, 20, 30] {
            assert!(cache.insert(step, vec![step as u8; 10]));
        }
        assert_eq!(cache.nearest_at_or_before(25).map(|(at, _)| at), Some(20));
        assert_eq!(cache.nearest_at_or_before(9), None);
        assert!(cache.insert(40, vec![4; 10]));
        assert_eq!(cache.nearest_at_or_before(15), None, "step 10 was the oldest and went first");
        assert_eq!(cache.size_bytes, 30);
        assert!(cache.insert(40, vec![5; 5]), "re-inserting a step replaces it");
        assert_eq!(cache.size_bytes, 25);
        assert!(!cache.insert(50, vec![0; 31]), "larger than the whole cache");
        assert_eq!(cache.nearest_at_or_before(u64::MAX), None, "no state older than step 50 stands in for it");
        assert_eq!(cache.size_bytes(), 0);
    }

    #[test]
    fn a_refused_snapshot_drops_the_states_it_supersedes_and_keeps_later_ones() {
        let mut cache = FastCache::new(30);
        for step in [10, 20, 30] {
            assert!(cache.insert(step, vec![0; 10]));
        }
        assert!(!cache.insert(20, vec![0; 40]));
        assert_eq!(cache.nearest_at_or_before(25), None, "step 10's state is not step 20's");
        assert_eq!(cache.nearest_at_or_before(35).map(|(at, _)| at), Some(30));
        assert_eq!(cache.size_bytes(), 10);
        assert!(!cache.insert(u64::MAX, vec![0; 40]));
        assert_eq!(cache.size_bytes(), 0);
    }
}
