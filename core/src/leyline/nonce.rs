//! Remembers every nonce seen inside the freshness window, so a captured frame
//! cannot be replayed.
//!
//! A nonce only needs remembering while its frame is still fresh: once the frame's
//! timestamp falls out of the freshness window the verifier refuses it as stale
//! anyway. So each nonce is filed under the time bucket its frame expires in, and a
//! bucket is forgotten whole once its last millisecond has passed — never a nonce
//! that is still live (a nonce may outlive its frame by up to one bucket, which
//! errs on the side of refusing).
//!
//! Memory is bounded by `capacity`, which the verifier sizes as the highest frame
//! rate it is configured for times the window. When the ledger is full it refuses
//! new frames ([`VerifyError::LedgerFull`], counted by the verifier) instead of
//! forgetting a live nonce: Esper-Lite's ledger evicted the entry closest to
//! expiry, which at the rates this code reaches let a frame be replayed a second
//! after it was first seen.
//!
//! [`VerifyError::LedgerFull`]: super::verify::VerifyError::LedgerFull

use std::collections::{BTreeSet, VecDeque};

use super::signing::Nonce;

/// Width of one expiry bucket: a nonce lives at most this much past its frame.
pub const NONCE_BUCKET_MS: u64 = 1_000;

/// Why a nonce was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceRefusal {
    /// The nonce is already held: the frame is a replay.
    Replayed,
    /// Every slot holds a live nonce; the frame cannot be checked, so it is refused.
    Full,
}

/// The nonces whose frames expire inside one bucket.
#[derive(Debug, Clone)]
struct Bucket {
    /// `expires_ms / NONCE_BUCKET_MS` of every nonce in it.
    index: u64,
    nonces: Vec<Nonce>,
}

/// Every live nonce, by expiry bucket.
#[derive(Debug, Clone)]
pub struct NonceLedger {
    capacity: usize,
    /// Membership, for the replay check.
    live: BTreeSet<Nonce>,
    /// The same nonces by expiry bucket, oldest first, for forgetting them.
    buckets: VecDeque<Bucket>,
    full_refusals: u64,
}

impl NonceLedger {
    /// An empty ledger holding at most `capacity` (≥ 1) live nonces.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a nonce ledger needs room for at least one nonce");
        Self { capacity, live: BTreeSet::new(), buckets: VecDeque::new(), full_refusals: 0 }
    }

    /// Records `nonce`, whose frame is fresh until `expires_ms`, at `now_ms`.
    pub fn insert(&mut self, nonce: Nonce, expires_ms: u64, now_ms: u64) -> Result<(), NonceRefusal> {
        self.forget_expired(now_ms);
        if self.live.contains(&nonce) {
            return Err(NonceRefusal::Replayed);
        }
        if self.live.len() >= self.capacity {
            if self.full_refusals == 0 || self.full_refusals.is_power_of_two() {
                tracing::warn!(
                    capacity = self.capacity,
                    refused = self.full_refusals + 1,
                    "leyline.nonce_ledger.full: refusing frames rather than forgetting live nonces"
                );
            }
            self.full_refusals += 1;
            return Err(NonceRefusal::Full);
        }
        self.live.insert(nonce);
        self.bucket_for(expires_ms / NONCE_BUCKET_MS).push(nonce);
        debug_assert_eq!(self.live.len(), self.buckets.iter().map(|bucket| bucket.nonces.len()).sum::<usize>());
        Ok(())
    }

    /// The bucket with `index`, created in order. Frames arrive roughly in time
    /// order, so this is almost always the newest bucket.
    fn bucket_for(&mut self, index: u64) -> &mut Vec<Nonce> {
        let position = self.buckets.iter().rposition(|bucket| bucket.index <= index);
        let at = match position {
            Some(found) if self.buckets[found].index == index => found,
            Some(before) => {
                self.buckets.insert(before + 1, Bucket { index, nonces: Vec::new() });
                before + 1
            }
            None => {
                self.buckets.push_front(Bucket { index, nonces: Vec::new() });
                0
            }
        };
        &mut self.buckets[at].nonces
    }

    /// Forgets every bucket whose last millisecond is before `now_ms`.
    fn forget_expired(&mut self, now_ms: u64) {
        while let Some(oldest) = self.buckets.front() {
            let last_ms = oldest.index.saturating_mul(NONCE_BUCKET_MS).saturating_add(NONCE_BUCKET_MS - 1);
            if last_ms >= now_ms {
                break;
            }
            if let Some(expired) = self.buckets.pop_front() {
                for nonce in &expired.nonces {
                    self.live.remove(nonce);
                }
            }
        }
    }

    /// Live nonces remembered.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The most live nonces it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames refused because the ledger was full.
    pub fn full_refusals(&self) -> u64 {
        self.full_refusals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(n: u32) -> Nonce {
        let mut nonce = [0; 16];
        nonce[..4].copy_from_slice(&n.to_be_bytes());
        nonce
    }

    #[test]
    fn replay_is_refused_until_its_bucket_expires_then_forgotten() {
        let mut ledger = NonceLedger::new(4);
        assert_eq!(ledger.insert(nonce(1), 100, 0), Ok(()));
        assert_eq!(ledger.insert(nonce(1), 100, 50), Err(NonceRefusal::Replayed), "replay inside the window");
        assert_eq!(ledger.insert(nonce(1), 100, 999), Err(NonceRefusal::Replayed), "kept to the bucket's end");
        assert_eq!(ledger.insert(nonce(2), 2_200, 1_000), Ok(()), "bucket 0 is over at 1000");
        assert_eq!(ledger.len(), 1, "nonce 1 was forgotten");
    }

    #[test]
    fn a_full_ledger_refuses_new_frames_and_keeps_every_live_nonce() {
        let mut ledger = NonceLedger::new(2);
        assert_eq!(ledger.insert(nonce(1), 3_000, 0), Ok(()));
        assert_eq!(ledger.insert(nonce(2), 1_000, 0), Ok(()));
        assert_eq!(ledger.insert(nonce(3), 2_000, 0), Err(NonceRefusal::Full));
        assert_eq!(ledger.full_refusals(), 1);
        assert_eq!(ledger.insert(nonce(2), 1_000, 0), Err(NonceRefusal::Replayed), "nothing live was forgotten");
        assert_eq!(ledger.insert(nonce(3), 2_500, 2_000), Ok(()), "room again once nonce 2's bucket is over");
    }

    #[test]
    fn frames_out_of_time_order_land_in_their_own_buckets() {
        let mut ledger = NonceLedger::new(8);
        for (n, expires) in [(1, 5_000), (2, 3_000), (3, 4_000), (4, 3_500)] {
            assert_eq!(ledger.insert(nonce(n), expires, 0), Ok(()));
        }
        assert_eq!(ledger.insert(nonce(5), 9_000, 4_000), Ok(()), "buckets 3 (nonces 2 and 4) are over");
        assert_eq!(ledger.len(), 3);
        assert_eq!(ledger.insert(nonce(3), 4_000, 4_000), Err(NonceRefusal::Replayed), "bucket 4 is live");
    }
}
