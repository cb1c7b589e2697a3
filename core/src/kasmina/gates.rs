//! The lifecycle gates: what a seed must show before it enters a stage.
//!
//! Esper-Lite's G0–G5, reduced to what this Kasmina can observe. Each check
//! returns the gate, whether it passed and the condition it looked at, so the
//! manager can put every evaluation in telemetry (`gate_event`) — a refused
//! promotion is never silent.
//!
//! | gate | before | passes when |
//! |---|---|---|
//! | G0 sanity | GERMINATED | a blueprint id, finite parameters (checked on the command) |
//! | G1 gradient health | TRAINING | a kernel is attached and no isolation violation was seen |
//! | G2 stability | BLENDING | the seed's health is at most degraded |
//! | G3 interface | SHADOWING | the blend has reached α = 1 |
//! | G4 system impact | PROBATIONARY | not running on the fallback kernel, no violations |
//! | G5 reset | DORMANT (from RESETTING) | kernel dropped and violations cleared |

use crate::leyline::{HealthStatus, SeedLifecycleGate as Gate, SeedLifecycleStage as Stage};

/// What a gate looks at for one seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateInputs {
    pub kernel_attached: bool,
    pub fallback_kernel: bool,
    pub violations: u32,
    pub health: HealthStatus,
    pub alpha: f32,
}

/// One evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateVerdict {
    pub gate: Gate,
    pub passed: bool,
    /// The condition checked (on a pass) or the reason (on a failure), in
    /// Esper-Lite's words where it had them.
    pub condition: &'static str,
}

/// The gate guarding entry into `to`, evaluated on `inputs`; `None` for stages
/// without one.
pub fn evaluate(to: Stage, inputs: &GateInputs) -> Option<GateVerdict> {
    let verdict = |gate, failure: Option<&'static str>, pass: &'static str| GateVerdict {
        gate,
        passed: failure.is_none(),
        condition: failure.unwrap_or(pass),
    };
    let violations = (inputs.violations > 0).then_some("isolation_violations");
    Some(match to {
        Stage::Training => verdict(
            Gate::G1GradientHealth,
            (!inputs.kernel_attached).then_some("kernel_not_attached").or(violations),
            "kernel_attached,isolated",
        ),
        Stage::Blending => verdict(
            Gate::G2Stability,
            (inputs.health >= HealthStatus::Unhealthy).then_some("seed_unhealthy"),
            "health_ok",
        ),
        Stage::Shadowing => verdict(Gate::G3Interface, (inputs.alpha < 1.0).then_some("blend_incomplete"), "alpha_1"),
        Stage::Probationary => verdict(
            Gate::G4SystemImpact,
            inputs.fallback_kernel.then_some("fallback_kernel_active").or(violations),
            "own_kernel,isolated",
        ),
        Stage::Dormant => verdict(
            Gate::G5Reset,
            (inputs.kernel_attached || inputs.violations > 0).then_some("reset_not_clean"),
            "reset_clean",
        ),
        _ => return None,
    })
}

/// Gate failures Esper-Lite raised as CRITICAL rather than WARNING.
pub fn is_critical(reason: &str) -> bool {
    matches!(reason, "fallback_kernel_active" | "fallback_kernel_used" | "stage_mismatch")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: GateInputs = GateInputs {
        kernel_attached: true,
        fallback_kernel: false,
        violations: 0,
        health: HealthStatus::Healthy,
        alpha: 1.0,
    };

    #[test]
    fn each_gate_names_its_failure() {
        let failure = |to, inputs| evaluate(to, &inputs).map(|v| (v.gate, v.passed, v.condition));
        assert_eq!(failure(Stage::Training, CLEAN), Some((Gate::G1GradientHealth, true, "kernel_attached,isolated")));
        let leaky = GateInputs { violations: 1, ..CLEAN };
        assert_eq!(failure(Stage::Training, leaky), Some((Gate::G1GradientHealth, false, "isolation_violations")));
        let fallback = GateInputs { fallback_kernel: true, ..CLEAN };
        assert_eq!(
            failure(Stage::Probationary, fallback),
            Some((Gate::G4SystemImpact, false, "fallback_kernel_active"))
        );
        let half = GateInputs { alpha: 0.5, ..CLEAN };
        assert_eq!(failure(Stage::Shadowing, half), Some((Gate::G3Interface, false, "blend_incomplete")));
        let sick = GateInputs { health: HealthStatus::Unhealthy, ..CLEAN };
        assert_eq!(failure(Stage::Blending, sick), Some((Gate::G2Stability, false, "seed_unhealthy")));
        assert_eq!(failure(Stage::Dormant, CLEAN), Some((Gate::G5Reset, false, "reset_not_clean")));
        assert_eq!(failure(Stage::Fossilized, CLEAN), None);
    }
}
