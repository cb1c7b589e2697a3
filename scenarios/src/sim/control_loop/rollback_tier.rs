//! Which rollback tier a control-loop run's Tolaria keeps, drawn from the seed, and
//! what `rollback-restores` then expects of every rollback and of the fast tier's
//! contents after each epoch.

use esper_core::tolaria::EpochReport;
use esper_core::tolaria::metrics::TolariaCounters;
use esper_sim::{Invariant, RngTree, Violation};
use rand::Rng;

/// The fast tier at its default cap, at a cap of exactly one snapshot, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RollbackTier {
    /// The default cap, which holds every snapshot these models make: every
    /// rollback is a fast hit.
    Fast,
    /// A cap of exactly one snapshot of the initial model: each step's snapshot
    /// evicts the one before, so a rollback to an epoch's start misses and loads
    /// the checkpoint, and once a graft has grown the model past the cap no
    /// snapshot fits at all. The only tier that makes the cache evict and refuse.
    Tight,
    /// No fast tier (a cap of 0): every rollback loads the checkpoint.
    CheckpointOnly,
}

impl RollbackTier {
    pub(super) fn draw(rng: &RngTree) -> Self {
        match rng.stream("rollback-tier").random_range(0..3_u8) {
            0 => Self::Fast,
            1 => Self::Tight,
            _ => Self::CheckpointOnly,
        }
    }

    /// The cap for a run whose initial model snapshots in `one_snapshot` bytes.
    pub(super) fn cap_bytes(self, one_snapshot: usize, default_cap: usize) -> usize {
        match self {
            Self::Fast => default_cap,
            Self::Tight => one_snapshot,
            Self::CheckpointOnly => 0,
        }
    }

    /// Whether a failure of `epoch` surely has a state to go back to: the default
    /// fast tier holds the initial model from the start, the checkpoint store only
    /// once the first epoch has ended (Tolaria, like Esper-Lite, writes none
    /// before), and the tight tier has let the initial model go by the time an
    /// epoch's first step is filed.
    pub(super) fn restorable(self, epoch: u32) -> bool {
        self == Self::Fast || epoch > 1
    }

    /// After an epoch, the fast tier holds `held` bytes and the model now
    /// snapshots in `newest`: the default tier holds at least the newest state,
    /// the tight one exactly it — or nothing when it no longer fits, since any
    /// older state it kept would be restored in place of one it never held — and
    /// a checkpoint-only run nothing.
    pub(super) fn check_held(self, cap: usize, held: usize, newest: usize) -> Result<(), Violation> {
        let fits = newest <= cap;
        let right = match self {
            Self::Fast => fits && held >= newest && held <= cap,
            Self::Tight => held == if fits { newest } else { 0 },
            Self::CheckpointOnly => held == 0,
        };
        if right {
            return Ok(());
        }
        Err(Invariant::RollbackRestores.violated(format!(
            "the {self:?} fast tier (cap {cap} bytes) holds {held} bytes after an epoch whose model snapshots in \
             {newest} bytes"
        )))
    }

    /// Every failed epoch was rolled back once, from the tier expected (or, before
    /// any state was saved, failed for want of one), and none ran out of time:
    /// Tolaria's disk here is fast and never faulted.
    pub(super) fn check(self, reports: &[EpochReport], counters: TolariaCounters) -> Result<(), Violation> {
        let failed = |restorable: bool| {
            let matching =
                |report: &&EpochReport| report.failure.is_some() && self.restorable(report.epoch) == restorable;
            reports.iter().filter(matching).count() as u64
        };
        let (restored, unrestorable) = (failed(true), failed(false));
        let counted = (
            counters.rollback_fast_hits_total,
            counters.rollback_fast_misses_total,
            counters.rollback_failures_total,
            counters.rollback_deadline_exceeded_total,
        );
        // (fast hits, fast misses, failed restores, deadline misses)
        let right = match self {
            Self::Fast => counted == (restored, 0, 0, 0),
            Self::CheckpointOnly => counted == (0, restored + unrestorable, unrestorable, 0),
            // An epoch-1 failure finds the initial model still held only if no
            // step of it was filed, and otherwise fails for want of a checkpoint;
            // every later rollback misses and loads the checkpoint.
            Self::Tight => {
                let (hits, misses, failures, deadline) = counted;
                hits + failures == unrestorable && misses == restored + failures && deadline == 0
            }
        };
        if right {
            return Ok(());
        }
        Err(Invariant::RollbackRestores.violated(format!(
            "{} failed epoch(s) rolled back with the {self:?} tier ({unrestorable} before the first checkpoint): \
             counted (fast hits, fast misses, failed, past the deadline) {counted:?}",
            restored + unrestorable
        )))
    }
}

#[cfg(test)]
mod tests {
    use esper_core::tolaria::EpochFailure;

    use super::*;

    fn failed(epoch: u32) -> EpochReport {
        EpochReport {
            epoch,
            loss: 0.0,
            accuracy: 0.0,
            latency_ms: 0.0,
            steps: 16,
            failure: Some(EpochFailure::EpochBudget),
            conservative: false,
            halted: false,
            telemetry: Vec::new(),
        }
    }

    fn counted(hits: u64, misses: u64, failures: u64) -> TolariaCounters {
        TolariaCounters {
            rollback_fast_hits_total: hits,
            rollback_fast_misses_total: misses,
            rollback_failures_total: failures,
            ..TolariaCounters::default()
        }
    }

    #[test]
    fn a_rollback_from_the_wrong_tier_breaks_rollback_restores() {
        let reports = [failed(1), failed(2)];
        assert!(RollbackTier::Fast.check(&reports, counted(2, 0, 0)).is_ok());
        assert!(RollbackTier::CheckpointOnly.check(&reports, counted(0, 2, 1)).is_ok(), "epoch 1 has no checkpoint");
        assert!(RollbackTier::Tight.check(&reports, counted(0, 2, 1)).is_ok(), "epoch 1's start was evicted");
        assert!(RollbackTier::Tight.check(&reports, counted(1, 1, 0)).is_ok(), "epoch 1 failed before filing a step");
        // A fast tier that missed once (a cache that lost a snapshot), a
        // checkpoint-only run that hit a fast tier it should not have, and a tight
        // tier that hit after the first checkpoint (it held a state it had evicted)
        // or failed a restore the checkpoint could serve.
        for (tier, counters) in [
            (RollbackTier::Fast, counted(1, 1, 0)),
            (RollbackTier::CheckpointOnly, counted(1, 1, 1)),
            (RollbackTier::Tight, counted(2, 0, 0)),
            (RollbackTier::Tight, counted(0, 2, 2)),
        ] {
            let violation = tier.check(&reports, counters).expect_err("wrong tier");
            assert_eq!(violation.invariant, Invariant::RollbackRestores);
        }
    }

    #[test]
    fn a_fast_tier_holding_the_wrong_bytes_breaks_rollback_restores() {
        let (default_cap, one) = (1 << 20, 600);
        let cap = |tier: RollbackTier| tier.cap_bytes(one, default_cap);
        let held = |tier: RollbackTier, held, newest| tier.check_held(cap(tier), held, newest);
        assert!(held(RollbackTier::Fast, 6_000, one).is_ok());
        assert!(held(RollbackTier::Tight, one, one).is_ok());
        assert!(held(RollbackTier::Tight, 0, one + 64).is_ok(), "a grown model no longer fits");
        assert!(held(RollbackTier::CheckpointOnly, 0, one).is_ok());
        // The fast tier lost the newest state; the tight one evicted what it just
        // filed, kept two states, or kept an older state when the newest did not
        // fit; a checkpoint-only run held something.
        for (tier, bytes, newest) in [
            (RollbackTier::Fast, 0, one),
            (RollbackTier::Tight, 0, one),
            (RollbackTier::Tight, 2 * one, one),
            (RollbackTier::Tight, one, one + 64),
            (RollbackTier::CheckpointOnly, one, one),
        ] {
            let violation = held(tier, bytes, newest).expect_err("wrong contents");
            assert_eq!(violation.invariant, Invariant::RollbackRestores);
        }
    }
}
