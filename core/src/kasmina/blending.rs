//! The alpha schedule that fades a seed in: 0 → 1 over `total_steps`.
//!
//! Esper-Lite's curve is a tanh ramp centred on the middle of the schedule,
//! α(n) = ½·(1 + tanh(½·(n − total/2) / temperature)), clamped to [0, 1]; with the
//! defaults (20 steps, temperature 2) it is ~0.08 at the start and ~0.92 at the end,
//! and Kasmina treats the schedule as complete at `total_steps`.

/// How alpha rises.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AlphaCurve {
    /// Esper-Lite's tanh ramp.
    Tanh { temperature: f32 },
    /// A straight line from 0 to 1.
    Linear,
}

/// A blending schedule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlphaSchedule {
    pub total_steps: u32,
    pub curve: AlphaCurve,
}

impl Default for AlphaSchedule {
    fn default() -> Self {
        Self { total_steps: 20, curve: AlphaCurve::Tanh { temperature: 2.0 } }
    }
}

impl AlphaSchedule {
    /// Alpha after `step` blending steps; 1 once the schedule is complete.
    pub fn alpha(&self, step: u32) -> f32 {
        if step >= self.total_steps || self.total_steps == 0 {
            return 1.0;
        }
        let raw = match self.curve {
            AlphaCurve::Tanh { temperature } => {
                let centred = step as f32 - self.total_steps as f32 / 2.0;
                0.5 * (1.0 + (0.5 * centred / temperature.max(f32::EPSILON)).tanh())
            }
            AlphaCurve::Linear => step as f32 / self.total_steps as f32,
        };
        raw.clamp(0.0, 1.0)
    }
}

/// Convex blend of host and seed activations: α·seed + (1 − α)·host.
pub fn convex(host: f32, seed: f32, alpha: f32) -> f32 {
    let alpha = alpha.clamp(0.0, 1.0);
    alpha * seed + (1.0 - alpha) * host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_ramp_matches_the_original_curve_and_rises_monotonically() {
        let schedule = AlphaSchedule::default();
        assert!((schedule.alpha(10) - 0.5).abs() < 1e-6);
        assert!((schedule.alpha(0) - 0.5 * (1.0 + (-2.5f32).tanh())).abs() < 1e-6);
        let alphas: Vec<f32> = (0..=20).map(|n| schedule.alpha(n)).collect();
        assert!(alphas.windows(2).all(|w| w[0] <= w[1]), "{alphas:?}");
        assert_eq!(schedule.alpha(20), 1.0);
        assert_eq!(convex(2.0, 4.0, 0.25), 2.5);
    }
}
