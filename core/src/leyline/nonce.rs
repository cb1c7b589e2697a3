//! Remembers recently seen nonces so a captured frame cannot be replayed.
//!
//! A nonce only needs remembering while its frame is still fresh: once the frame's
//! timestamp falls out of the freshness window the verifier refuses it as stale anyway.
//! Entries therefore expire at `timestamp + window`, and memory is bounded by
//! `capacity`: when full, the entry closest to expiry is evicted (and counted), as
//! Esper-Lite's command ledger did.

use std::collections::{BTreeMap, BTreeSet};

use super::signing::Nonce;

/// Default number of nonces remembered, as the original's ledger.
pub const DEFAULT_NONCE_CAPACITY: usize = 10_000;

/// Bounded set of nonces with expiry times (ms).
#[derive(Debug, Clone)]
pub struct NonceLedger {
    capacity: usize,
    expiry_of: BTreeMap<Nonce, u64>,
    by_expiry: BTreeSet<(u64, Nonce)>,
    evictions: u64,
}

impl NonceLedger {
    /// An empty ledger holding at most `capacity` (≥ 1) nonces.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a nonce ledger needs room for at least one nonce");
        Self { capacity, expiry_of: BTreeMap::new(), by_expiry: BTreeSet::new(), evictions: 0 }
    }

    /// Records `nonce` until `expires_ms`; returns false if it is already held (a replay).
    pub fn insert(&mut self, nonce: Nonce, expires_ms: u64, now_ms: u64) -> bool {
        self.forget_expired(now_ms);
        if self.expiry_of.contains_key(&nonce) {
            return false;
        }
        if self.expiry_of.len() == self.capacity
            && let Some((expiry, oldest)) = self.by_expiry.pop_first()
        {
            debug_assert_eq!(self.expiry_of.get(&oldest), Some(&expiry));
            self.expiry_of.remove(&oldest);
            self.evictions += 1;
        }
        self.expiry_of.insert(nonce, expires_ms);
        self.by_expiry.insert((expires_ms, nonce));
        debug_assert_eq!(self.expiry_of.len(), self.by_expiry.len());
        true
    }

    fn forget_expired(&mut self, now_ms: u64) {
        while let Some(&(expiry, nonce)) = self.by_expiry.first() {
            if expiry >= now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry_of.remove(&nonce);
        }
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.expiry_of.len()
    }

    /// True when no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry_of.is_empty()
    }

    /// Unexpired nonces pushed out because the ledger was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_refused_until_expiry_then_forgotten() {
        let mut ledger = NonceLedger::new(4);
        assert!(ledger.insert([1; 16], 100, 0));
        assert!(!ledger.insert([1; 16], 100, 50), "replay inside the window");
        assert!(ledger.insert([2; 16], 200, 101), "expired nonce makes room");
        assert_eq!(ledger.len(), 1, "nonce 1 was forgotten at 101");
    }

    #[test]
    fn full_ledger_evicts_the_entry_closest_to_expiry() {
        let mut ledger = NonceLedger::new(2);
        assert!(ledger.insert([1; 16], 300, 0));
        assert!(ledger.insert([2; 16], 100, 0));
        assert!(ledger.insert([3; 16], 200, 0));
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger.evictions(), 1);
        assert!(ledger.insert([2; 16], 100, 0), "nonce 2 (earliest expiry) was evicted");
        assert!(!ledger.insert([1; 16], 300, 0), "nonce 1 is still held");
    }
}
