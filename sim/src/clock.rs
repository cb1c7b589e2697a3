//! Per-host wall-clock skew, so a fault schedule can make a host's clock jump.
//!
//! tokio's clock is the world's clock and must stay monotonic (timers, sleeps),
//! so a [`crate::Fault::ClockJump`] does not touch it. It moves the Unix time a
//! host *reads* instead: hosts that stamp or check Leyline timestamps take their
//! Unix milliseconds through [`ClockSkew::adjust`], and the world adds each jump to
//! the host's skew. Signatures then go stale or land in the future exactly as on
//! a machine whose NTP stepped its clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A host's current skew in milliseconds. Cheap to clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct ClockSkew(Arc<AtomicI64>);

impl ClockSkew {
    /// `unix_ms` as this host's skewed clock shows it.
    pub fn adjust(&self, unix_ms: u64) -> u64 {
        unix_ms.saturating_add_signed(self.0.load(Ordering::Relaxed))
    }

    /// The skew so far.
    pub fn skew_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Steps the clock by `by_ms`.
    pub(crate) fn jump(&self, by_ms: i64) {
        self.0.fetch_add(by_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_accumulate_and_never_wrap() {
        let skew = ClockSkew::default();
        let reader = skew.clone();
        skew.jump(-5_000);
        skew.jump(1_000);
        assert_eq!(reader.skew_ms(), -4_000);
        assert_eq!(reader.adjust(10_000), 6_000);
        assert_eq!(reader.adjust(1_000), 0, "saturates at the Unix epoch");
    }
}
