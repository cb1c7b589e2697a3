//! How fast the device runs compared with its nominal speed: the seam through
//! which a simulation throttles training (a contended or thermally throttled GPU,
//! a noisy neighbour) without the trainer knowing what drives it.
//!
//! The trainer scales its sim cost model (`TrainingLoopConfig::step_cost`) by the
//! pace it reads at every step. A driver that wants to slow the device keeps a
//! clone and changes the percentage; everyone else gets [`StepPace::default`],
//! the nominal pace, which changes nothing. In the real profile the step cost is
//! zero, so the pace has no effect there either.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The nominal pace: a step costs exactly `step_cost`.
pub const NOMINAL_PERCENT: u32 = 100;

/// The device's step time as a percentage of nominal (200 = twice as slow).
/// Cheap to clone; clones share the value, so a driver can change it while the
/// trainer runs.
#[derive(Debug, Clone)]
pub struct StepPace(Arc<AtomicU32>);

impl Default for StepPace {
    fn default() -> Self {
        Self(Arc::new(AtomicU32::new(NOMINAL_PERCENT)))
    }
}

impl StepPace {
    /// The current step time, in percent of nominal.
    pub fn percent(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the step time to `percent` of nominal. Zero is raised to one: a
    /// device that takes no time at all is not a slower device, it is no device.
    pub fn set_percent(&self, percent: u32) {
        self.0.store(percent.max(1), Ordering::Relaxed);
    }

    /// `cost` at the current pace, to the nanosecond. Integer arithmetic, so the
    /// nominal pace returns `cost` exactly and a run's trace does not move.
    pub fn scale(&self, cost: Duration) -> Duration {
        let nanos = cost.as_nanos() * u128::from(self.percent()) / u128::from(NOMINAL_PERCENT);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_pace_leaves_the_cost_unchanged() {
        let cost = Duration::from_micros(270);
        assert_eq!(StepPace::default().scale(cost), cost);
    }

    #[test]
    fn a_clone_sees_the_throttle_and_scales_the_cost() {
        let pace = StepPace::default();
        let driver = pace.clone();
        driver.set_percent(450);
        assert_eq!(pace.scale(Duration::from_millis(5)), Duration::from_micros(22_500));
        driver.set_percent(0);
        assert_eq!(pace.percent(), 1, "a zero pace is raised to the smallest one");
        driver.set_percent(NOMINAL_PERCENT);
        assert_eq!(pace.scale(Duration::from_millis(5)), Duration::from_millis(5));
    }
}
