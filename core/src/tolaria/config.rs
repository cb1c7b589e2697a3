//! Tolaria's knobs, with Esper-Lite's defaults and environment overrides.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::planted::Planted;
use crate::tolaria::rollback::FAST_CACHE_DEFAULT_BYTES;

/// Everything the training loop needs to know besides its collaborators.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingLoopConfig {
    /// Identifies the run in packets, commands and signals.
    pub run_id: String,
    /// Samples per optimizer step (RC1: 4).
    pub batch_size: usize,
    /// An epoch longer than this fails with `epoch_budget` (250 ms).
    pub epoch_budget: Duration,
    /// A step whose Tamiyo + Kasmina hooks take longer fails the epoch with `hook_budget` (50 ms).
    pub hook_budget: Duration,
    /// How long Tolaria waits for Tamiyo's decision, and for Kasmina's apply
    /// (`TAMIYO_STEP_TIMEOUT_MS`; the original waited 2 s).
    pub step_timeout: Duration,
    /// How long a rollback may take before it counts as `deadline_exceeded`
    /// (`TOLARIA_ROLLBACK_DEADLINE_MS`, 250 ms).
    pub rollback_deadline: Duration,
    /// Byte cap of the fast rollback tier (`TOLARIA_ROLLBACK_FAST_CAP_MB`, 32 MiB).
    pub rollback_fast_cap_bytes: usize,
    /// A failed epoch rolls the model back to its state at the epoch's start, as
    /// Esper-Lite did when its rollback tier was configured (`TOLARIA_ROLLBACK_ENABLED`,
    /// false as the original). A diverged step is rolled back either way.
    pub rollback_enabled: bool,
    /// A finite training loss above this is treated as divergence and rolled back.
    pub divergence_loss: f32,
    /// Failed epochs climb the emergency ladder (L2, L3 when the breaker is open)
    /// (`TOLARIA_EMERGENCY_ENABLED`, false as the original).
    pub emergency_enabled: bool,
    /// Consecutive failed epochs that escalate to an L4 halt (`TOLARIA_EMERGENCY_L4_FAILED_EPOCHS`, 3).
    pub l4_failed_epochs: u32,
    /// A rollback past its deadline halts training (`TOLARIA_EMERGENCY_L4_ON_ROLLBACK_DEADLINE`, true).
    pub l4_on_rollback_deadline: bool,
    /// The epoch breaker (3 failures, 1 success, 30 s).
    pub breaker: BreakerConfig,
    /// Virtual time charged per optimizer step in the sim (the deterministic cost
    /// model; sub-millisecond costs accrue and are slept in whole milliseconds);
    /// zero in the real profile, where the device's own time is measured.
    pub step_cost: Duration,
    /// Objective for `slo.tolaria_latency_*` (the runbooks' 18 ms).
    pub latency_objective_ms: f64,
    /// The planted bug a drill arms (test builds only; see [`crate::planted`]).
    pub planted: Planted,
}

impl Default for TrainingLoopConfig {
    fn default() -> Self {
        Self {
            run_id: "run-0".to_owned(),
            batch_size: 4,
            epoch_budget: Duration::from_millis(250),
            hook_budget: Duration::from_millis(50),
            step_timeout: Duration::from_millis(2_000),
            rollback_deadline: Duration::from_millis(250),
            rollback_fast_cap_bytes: FAST_CACHE_DEFAULT_BYTES,
            rollback_enabled: false,
            divergence_loss: 1.0e4,
            emergency_enabled: false,
            l4_failed_epochs: 3,
            l4_on_rollback_deadline: true,
            breaker: BreakerConfig::default(),
            step_cost: Duration::ZERO,
            latency_objective_ms: 18.0,
            planted: Planted::NONE,
        }
    }
}

/// An environment variable that is set but unusable (the crate's one such error).
pub use crate::env_config::EnvConfigError as ConfigError;
use crate::env_config::{flag, number as parse};

impl TrainingLoopConfig {
    /// The defaults with Esper-Lite's environment overrides applied, read through
    /// `lookup` (pass `|name| std::env::var(name).ok()` for the process environment).
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let millis = |name: &'static str| parse::<u64>(name, lookup(name), "milliseconds as an integer");
        if let Some(ms) = millis("TAMIYO_STEP_TIMEOUT_MS")? {
            self.step_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = millis("TOLARIA_ROLLBACK_DEADLINE_MS")? {
            self.rollback_deadline = Duration::from_millis(ms);
        }
        let name = "TOLARIA_ROLLBACK_FAST_CAP_MB";
        if let Some(mb) = parse::<usize>(name, lookup(name), "mebibytes as an integer")? {
            self.rollback_fast_cap_bytes = mb.saturating_mul(1 << 20);
        }
        let name = "TOLARIA_EMERGENCY_L4_FAILED_EPOCHS";
        if let Some(epochs) = parse::<u32>(name, lookup(name), "a count of epochs")? {
            self.l4_failed_epochs = epochs;
        }
        let flag = |name: &'static str| flag(name, lookup(name));
        if let Some(enabled) = flag("TOLARIA_EMERGENCY_ENABLED")? {
            self.emergency_enabled = enabled;
        }
        if let Some(enabled) = flag("TOLARIA_ROLLBACK_ENABLED")? {
            self.rollback_enabled = enabled;
        }
        if let Some(halt) = flag("TOLARIA_EMERGENCY_L4_ON_ROLLBACK_DEADLINE")? {
            self.l4_on_rollback_deadline = halt;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_apply_and_bad_values_are_named() {
        let env = |name: &str| match name {
            "TAMIYO_STEP_TIMEOUT_MS" => Some("500".to_owned()),
            "TOLARIA_EMERGENCY_L4_ON_ROLLBACK_DEADLINE" => Some("FALSE".to_owned()),
            _ => None,
        };
        let config = TrainingLoopConfig::default().with_env(env).expect("valid");
        assert_eq!(config.step_timeout, Duration::from_millis(500));
        assert!(!config.l4_on_rollback_deadline);
        let bad = |name: &str| (name == "TOLARIA_ROLLBACK_DEADLINE_MS").then(|| "soon".to_owned());
        let err = TrainingLoopConfig::default().with_env(bad).expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "TOLARIA_ROLLBACK_DEADLINE_MS=\"soon\" is not valid: expected milliseconds as an integer"
        );
    }
}
