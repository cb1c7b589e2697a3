//! The alpha schedule that fades a seed in, and the blend changes Tamiyo may
//! command while it does.
//!
//! Esper-Lite's default curve is a tanh ramp centred on the middle of the schedule,
//! α(n) = ½·(1 + tanh(½·(n − total/2) / temperature)), clamped to [0, 1]; with the
//! defaults (20 steps, temperature 2) it is ~0.08 at the start and ~0.92 at the end,
//! and Kasmina treats the schedule as complete at `total_steps`.
//!
//! A *blend change* re-plans a BLENDING seed from wherever its alpha is now. It is
//! read from the `seed_operation.parameters` Tamiyo writes (`alpha`,
//! `blending_method_index`, `blending_schedule_start`, `blending_schedule_end`,
//! see Tamiyo's policy), plus `blending_steps` for the length of the new window.

use std::collections::BTreeMap;

/// How alpha rises, as a function of progress through the schedule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AlphaCurve {
    /// Esper-Lite's tanh ramp.
    Tanh { temperature: f32 },
    /// A straight line from 0 to 1 (Tamiyo's `linear`, method 0).
    Linear,
    /// ½·(1 − cos πt) (Tamiyo's `cosine`, method 1).
    Cosine,
    /// Linear over the first half, then held at the top (Tamiyo's `warmup_hold`, method 2).
    WarmupHold,
}

impl AlphaCurve {
    /// Tamiyo's blending methods, by `blending_method_index`.
    pub const TAMIYO_METHODS: [AlphaCurve; 3] = [AlphaCurve::Linear, AlphaCurve::Cosine, AlphaCurve::WarmupHold];

    /// The curve `position` steps into a schedule `total` steps long (0 < total).
    fn at(self, position: f32, total: f32) -> f32 {
        let t = (position / total).clamp(0.0, 1.0);
        let raw = match self {
            AlphaCurve::Tanh { temperature } => {
                let centred = position - total / 2.0;
                0.5 * (1.0 + libm::tanhf(0.5 * centred / temperature.max(f32::EPSILON)))
            }
            AlphaCurve::Linear => t,
            AlphaCurve::Cosine => 0.5 * (1.0 - libm::cosf(std::f32::consts::PI * t)),
            AlphaCurve::WarmupHold => 2.0 * t,
        };
        raw.clamp(0.0, 1.0)
    }
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
        self.curve.at(step as f32, self.total_steps as f32)
    }
}

/// Convex blend of host and seed activations: α·seed + (1 − α)·host.
pub fn convex(host: f32, seed: f32, alpha: f32) -> f32 {
    let alpha = alpha.clamp(0.0, 1.0);
    alpha * seed + (1.0 - alpha) * host
}

/// Target alpha of a blend change, in [0, 1]; default 1.
pub const PARAM_ALPHA: &str = "alpha";
/// Curve of a blend change: 0 linear, 1 cosine, 2 warmup_hold; default linear.
pub const PARAM_METHOD: &str = "blending_method_index";
/// Where in the window the ramp starts and ends, as fractions in [0, 1]; default 0 and 1.
pub const PARAM_START: &str = "blending_schedule_start";
pub const PARAM_END: &str = "blending_schedule_end";
/// Steps in the new window, a whole number ≥ 1; default: what is left of the current one.
pub const PARAM_STEPS: &str = "blending_steps";
const BLEND_PARAMETERS: [&str; 5] = [PARAM_ALPHA, PARAM_METHOD, PARAM_START, PARAM_END, PARAM_STEPS];

/// A blend parameter Kasmina will not take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("blend parameter `{name}` = {value}: {reason}")]
pub struct BadBlendParameter {
    pub name: &'static str,
    pub value: f32,
    pub reason: &'static str,
}

/// Whether a command's parameters ask for a blend change.
pub fn is_blend_change(parameters: &BTreeMap<String, f32>) -> bool {
    BLEND_PARAMETERS.iter().any(|name| parameters.contains_key(*name))
}

/// A blend change as commanded, checked.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlendChange {
    pub target: f32,
    pub curve: AlphaCurve,
    pub window: (f32, f32),
    pub steps: Option<u32>,
}

impl BlendChange {
    /// Reads and checks the blend parameters (absent ones take their defaults).
    pub fn from_parameters(parameters: &BTreeMap<String, f32>) -> Result<Self, BadBlendParameter> {
        let get = |name: &'static str| parameters.get(name).copied().map(|value| (name, value));
        let fraction = |name: &'static str, default: f32| match get(name) {
            None => Ok(default),
            Some((_, value)) if (0.0..=1.0).contains(&value) => Ok(value),
            Some((name, value)) => Err(BadBlendParameter { name, value, reason: "must lie in [0, 1]" }),
        };
        let target = fraction(PARAM_ALPHA, 1.0)?;
        let window = (fraction(PARAM_START, 0.0)?, fraction(PARAM_END, 1.0)?);
        if window.0 > window.1 {
            return Err(BadBlendParameter { name: PARAM_START, value: window.0, reason: "must not exceed the end" });
        }
        let curve = match get(PARAM_METHOD) {
            None => AlphaCurve::Linear,
            Some((name, value)) => *AlphaCurve::TAMIYO_METHODS
                .iter()
                .zip(0u8..)
                .find(|(_, index)| f32::from(*index) == value)
                .map(|(curve, _)| curve)
                .ok_or(BadBlendParameter {
                    name,
                    value,
                    reason: "must be 0 (linear), 1 (cosine) or 2 (warmup_hold)",
                })?,
        };
        let steps = match get(PARAM_STEPS) {
            None => None,
            Some((_, value)) if value >= 1.0 && value.fract() == 0.0 && value <= u32::MAX as f32 => Some(value as u32),
            Some((name, value)) => {
                return Err(BadBlendParameter { name, value, reason: "must be a whole number ≥ 1" });
            }
        };
        Ok(Self { target, curve, window, steps })
    }

    /// The plan that starts at `alpha` now, over `steps` (unless the change names its own).
    pub fn plan(&self, alpha: f32, steps: u32) -> BlendPlan {
        BlendPlan { change: *self, from: alpha, steps: self.steps.unwrap_or(steps).max(1), elapsed: 0 }
    }
}

/// A commanded blend in progress: alpha goes from `from` to the change's target
/// over `steps`, the curve running within the change's window and alpha held
/// outside it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlendPlan {
    pub change: BlendChange,
    pub from: f32,
    pub steps: u32,
    pub elapsed: u32,
}

impl BlendPlan {
    /// One blending step; returns the new alpha.
    pub fn step(&mut self) -> f32 {
        self.elapsed = self.elapsed.saturating_add(1);
        self.alpha()
    }

    /// Alpha after `elapsed` steps of the plan; the target once the window is done.
    pub fn alpha(&self) -> f32 {
        let (start, end) = self.change.window;
        let progress = self.elapsed as f32 / self.steps as f32;
        let t = if end > start {
            (progress - start) / (end - start)
        } else if progress >= start {
            1.0
        } else {
            0.0
        };
        let t = t.clamp(0.0, 1.0);
        let shape = if t >= 1.0 { 1.0 } else { self.change.curve.at(t * self.steps as f32, self.steps as f32) };
        (self.from + (self.change.target - self.from) * shape).clamp(0.0, 1.0)
    }

    /// Steps left in the window.
    pub fn remaining(&self) -> u32 {
        self.steps.saturating_sub(self.elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_ramp_matches_the_original_curve_and_rises_monotonically() {
        let schedule = AlphaSchedule::default();
        assert!((schedule.alpha(10) - 0.5).abs() < 1e-6);
        assert!((schedule.alpha(0) - 0.5 * (1.0 + libm::tanhf(-2.5))).abs() < 1e-6);
        let alphas: Vec<f32> = (0..=20).map(|n| schedule.alpha(n)).collect();
        assert!(alphas.windows(2).all(|w| w[0] <= w[1]), "{alphas:?}");
        assert_eq!(schedule.alpha(20), 1.0);
        assert_eq!(convex(2.0, 4.0, 0.25), 2.5);
    }

    #[test]
    fn a_blend_plan_ramps_within_its_window_and_holds_outside_it() {
        let parameters =
            [(PARAM_ALPHA, 0.6), (PARAM_START, 0.25), (PARAM_END, 0.75), (PARAM_STEPS, 8.0), (PARAM_METHOD, 0.0)];
        let parameters = parameters.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut plan = BlendChange::from_parameters(&parameters).expect("valid").plan(0.2, 99);
        let alphas: Vec<f32> = (0..8).map(|_| plan.step()).collect();
        let expected = [0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.6];
        assert!(alphas.iter().zip(expected).all(|(a, e)| (a - e).abs() < 1e-6), "{alphas:?}");
        assert_eq!(plan.remaining(), 0);
        let cosine = BlendChange {
            curve: AlphaCurve::Cosine,
            ..BlendChange::from_parameters(&BTreeMap::new()).expect("defaults")
        };
        let mut plan = cosine.plan(0.0, 4);
        assert!((plan.step() - 0.5 * (1.0 - libm::cosf(std::f32::consts::FRAC_PI_4))).abs() < 1e-6);
    }

    #[test]
    fn bad_blend_parameters_are_refused_by_name() {
        let one = |name: &str, value: f32| BlendChange::from_parameters(&[(name.to_owned(), value)].into());
        assert_eq!(one(PARAM_ALPHA, 1.5).expect_err("range").name, PARAM_ALPHA);
        assert_eq!(one(PARAM_ALPHA, f32::NAN).expect_err("nan").name, PARAM_ALPHA);
        assert_eq!(one(PARAM_METHOD, 3.0).expect_err("method").name, PARAM_METHOD);
        assert_eq!(one(PARAM_STEPS, 0.0).expect_err("steps").name, PARAM_STEPS);
        assert_eq!(one(PARAM_STEPS, 2.5).expect_err("steps").name, PARAM_STEPS);
        let backwards = [(PARAM_START.to_owned(), 0.8), (PARAM_END.to_owned(), 0.2)].into();
        assert_eq!(BlendChange::from_parameters(&backwards).expect_err("window").name, PARAM_START);
        assert!(is_blend_change(&[(PARAM_ALPHA.to_owned(), 0.1)].into()) && !is_blend_change(&BTreeMap::new()));
    }
}
