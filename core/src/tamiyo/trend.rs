//! What the loss history says: a smoothed per-step loss and a windowed trend.
//!
//! Tolaria reports the loss of each minibatch. With Esper-Lite's RC1 batch of 4 that
//! loss jumps by tenths from one step to the next, and the jumps repeat with the
//! batch order, so a step-to-step difference says nothing about whether training is
//! still improving. Two readings are kept instead:
//!
//! * an exponential moving average and its change per step (`loss_delta`), which
//!   still moves at once on a real spike — the risk engine's `loss_spike` check;
//! * the relative change between the mean loss of the last `window` steps and of the
//!   `window` steps before them (`window_change`), which averages the batch pattern
//!   out — what the policy reads as improving, flat or rising. With `window` equal to
//!   the steps of an epoch, it compares epoch with epoch.

use std::collections::VecDeque;

/// The history's verdict at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendReading {
    /// Smoothed loss (NaN when this step's loss was not finite).
    pub smoothed: f32,
    /// Change of the smoothed loss since the previous finite step (0 on the first).
    pub delta: f32,
    /// (mean of the last window − mean of the window before) / mean of the window
    /// before; `None` until two windows of finite losses have been seen.
    pub window_change: Option<f32>,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LossTrend {
    smoothing: f32,
    window: usize,
    smoothed: Option<f32>,
    losses: VecDeque<f32>,
}

impl LossTrend {
    /// A trend with moving-average weight `smoothing` (0 < w ≤ 1) over windows of `window` steps.
    pub fn new(smoothing: f32, window: usize) -> Self {
        assert!(smoothing > 0.0 && smoothing <= 1.0, "loss smoothing must be in (0, 1]");
        assert!(window > 0, "the trend window must hold at least one step");
        Self { smoothing, window, smoothed: None, losses: VecDeque::with_capacity(2 * window) }
    }

    /// Folds in this step's loss. A non-finite loss is reported (as NaN) but never
    /// enters the history: one diverged step must not poison every later reading.
    pub fn observe(&mut self, loss: f32) -> TrendReading {
        if !loss.is_finite() {
            return TrendReading { smoothed: f32::NAN, delta: 0.0, window_change: self.window_change() };
        }
        let previous = self.smoothed;
        let smoothed = previous.map_or(loss, |prev| prev + self.smoothing * (loss - prev));
        self.smoothed = Some(smoothed);
        if self.losses.len() == 2 * self.window {
            self.losses.pop_front();
        }
        self.losses.push_back(loss);
        debug_assert!(self.losses.len() <= 2 * self.window);
        TrendReading {
            smoothed,
            delta: previous.map_or(0.0, |prev| smoothed - prev),
            window_change: self.window_change(),
        }
    }

    fn window_change(&self) -> Option<f32> {
        if self.losses.len() < 2 * self.window {
            return None;
        }
        let mean = |losses: &mut dyn Iterator<Item = &f32>| losses.sum::<f32>() / self.window as f32;
        let earlier = mean(&mut self.losses.iter().take(self.window));
        let later = mean(&mut self.losses.iter().skip(self.window));
        Some((later - earlier) / earlier.abs().max(f32::MIN_POSITIVE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_change_compares_the_last_window_with_the_one_before() {
        let mut trend = LossTrend::new(0.5, 2);
        let readings: Vec<_> = [4.0, 4.0, 3.0, 3.0, 3.0].into_iter().map(|l| trend.observe(l)).collect();
        assert_eq!(readings[2].window_change, None, "three losses are not two windows");
        assert_eq!(readings[3].window_change, Some(-0.25), "(3 - 4) / 4");
        assert_eq!(readings[4].window_change, Some((3.0 - 3.5) / 3.5), "windows [4, 3] and [3, 3]");
        assert_eq!((readings[1].smoothed, readings[2].smoothed, readings[2].delta), (4.0, 3.5, -0.5));
    }

    #[test]
    fn a_non_finite_loss_is_reported_but_not_remembered() {
        let mut trend = LossTrend::new(0.5, 1);
        trend.observe(2.0);
        let bad = trend.observe(f32::INFINITY);
        assert!(bad.smoothed.is_nan());
        assert_eq!((bad.delta, bad.window_change), (0.0, None));
        let next = trend.observe(1.0);
        assert_eq!((next.smoothed, next.delta, next.window_change), (1.5, -0.5, Some(-0.5)));
    }
}
