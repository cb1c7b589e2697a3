//! Tamiyo's knobs, with Esper-Lite's defaults and environment overrides.

use std::time::Duration;

use crate::breaker::BreakerConfig;

use super::policy::PolicyConfig;
use super::risk::RiskConfig;

/// Environment variable: how long one decision may take.
pub const STEP_TIMEOUT_ENV: &str = "TAMIYO_STEP_TIMEOUT_MS";
/// Environment variable: how long a blueprint metadata lookup may take.
pub const METADATA_TIMEOUT_ENV: &str = "TAMIYO_METADATA_TIMEOUT_MS";
/// Environment variable: start in conservative mode.
pub const CONSERVATIVE_MODE_ENV: &str = "TAMIYO_CONSERVATIVE_MODE";

/// Everything the service needs besides its collaborators.
#[derive(Debug, Clone, PartialEq)]
pub struct TamiyoConfig {
    /// Budget for one `evaluate_step`, policy and metadata lookup together
    /// (`TAMIYO_STEP_TIMEOUT_MS`). Esper-Lite's Tamiyo read 5 ms here for the GNN
    /// forward pass alone; in Esper the variable is shared with Tolaria, which bounds
    /// the whole call with it, so Tamiyo holds itself to the same budget: a decision
    /// later than Tolaria waits for is `timeout_inference` on both sides. Default 2 s,
    /// Tolaria's default.
    pub step_timeout: Duration,
    /// Bound on one blueprint metadata lookup (`TAMIYO_METADATA_TIMEOUT_MS`, 25 ms).
    pub metadata_timeout: Duration,
    /// The metadata breaker: 3 failures open it, 100 ms later it half-opens, one
    /// success closes it (Esper-Lite's `metadata` breaker).
    pub metadata_breaker: BreakerConfig,
    /// How long a looked-up blueprint stays cached (5 min, as the original).
    pub metadata_cache_ttl: Duration,
    /// Blueprints kept in the metadata cache at most.
    pub metadata_cache_capacity: usize,
    /// Start in conservative mode (`TAMIYO_CONSERVATIVE_MODE`, false).
    pub conservative_mode: bool,
    /// The decision rule's thresholds.
    pub policy: PolicyConfig,
    /// The risk engine's thresholds.
    pub risk: RiskConfig,
    /// Telemetry packets held for the publisher at most; older ones are dropped
    /// (and counted) when it falls behind.
    pub telemetry_outbox_capacity: usize,
}

impl Default for TamiyoConfig {
    fn default() -> Self {
        Self {
            step_timeout: Duration::from_millis(2_000),
            metadata_timeout: Duration::from_millis(25),
            metadata_breaker: BreakerConfig { failure_threshold: 3, success_threshold: 1, open_ms: 100 },
            metadata_cache_ttl: Duration::from_secs(300),
            metadata_cache_capacity: 128,
            conservative_mode: false,
            policy: PolicyConfig::default(),
            risk: RiskConfig::default(),
            telemetry_outbox_capacity: 256,
        }
    }
}

/// An environment variable that is set but unusable, or a combination that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TamiyoConfigError {
    #[error("{name}={value:?} is not valid: expected {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
    #[error(
        "{METADATA_TIMEOUT_ENV} ({metadata_ms} ms) must be below {STEP_TIMEOUT_ENV} ({step_ms} ms): \
         a metadata lookup has to fit inside the step budget"
    )]
    MetadataOutlastsStep { metadata_ms: u128, step_ms: u128 },
}

impl TamiyoConfig {
    /// The configuration with environment overrides applied, read through `lookup`
    /// (pass `|name| std::env::var(name).ok()` for the process environment).
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TamiyoConfigError> {
        if let Some(ms) = positive_millis(STEP_TIMEOUT_ENV, lookup(STEP_TIMEOUT_ENV))? {
            self.step_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = positive_millis(METADATA_TIMEOUT_ENV, lookup(METADATA_TIMEOUT_ENV))? {
            self.metadata_timeout = Duration::from_millis(ms);
        }
        if let Some(on) = flag(CONSERVATIVE_MODE_ENV, lookup(CONSERVATIVE_MODE_ENV))? {
            self.conservative_mode = on;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks the combinations no single field can: the metadata lookup must fit the step.
    pub fn validate(&self) -> Result<(), TamiyoConfigError> {
        if self.metadata_timeout >= self.step_timeout {
            return Err(TamiyoConfigError::MetadataOutlastsStep {
                metadata_ms: self.metadata_timeout.as_millis(),
                step_ms: self.step_timeout.as_millis(),
            });
        }
        Ok(())
    }
}

fn positive_millis(name: &'static str, value: Option<String>) -> Result<Option<u64>, TamiyoConfigError> {
    let Some(value) = value else { return Ok(None) };
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Some(ms)),
        _ => Err(TamiyoConfigError::Invalid { name, value, expected: "a positive whole number of milliseconds" }),
    }
}

fn flag(name: &'static str, value: Option<String>) -> Result<Option<bool>, TamiyoConfigError> {
    crate::env_config::flag(name, value).map_err(|error| TamiyoConfigError::Invalid {
        name,
        value: error.value,
        expected: error.expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
    }

    #[test]
    fn defaults_are_esper_lites_and_env_overrides_them() {
        let config = TamiyoConfig::default().with_env(env(&[])).expect("defaults are valid");
        assert_eq!(config.metadata_timeout, Duration::from_millis(25));
        assert_eq!(config.metadata_breaker.open_ms, 100);
        assert!(!config.conservative_mode);
        let config = TamiyoConfig::default()
            .with_env(env(&[(STEP_TIMEOUT_ENV, "500"), (METADATA_TIMEOUT_ENV, " 40 "), (CONSERVATIVE_MODE_ENV, "1")]))
            .expect("valid overrides");
        assert_eq!(config.step_timeout, Duration::from_millis(500));
        assert_eq!(config.metadata_timeout, Duration::from_millis(40));
        assert!(config.conservative_mode);
    }

    #[test]
    fn bad_values_name_the_variable_and_what_was_expected() {
        for (name, value) in [(STEP_TIMEOUT_ENV, "fast"), (METADATA_TIMEOUT_ENV, "0"), (CONSERVATIVE_MODE_ENV, "maybe")]
        {
            let err = TamiyoConfig::default().with_env(env(&[(name, value)])).expect_err("refused");
            let text = err.to_string();
            assert!(text.starts_with(&format!("{name}={value:?} is not valid")), "{text}");
        }
        let err = TamiyoConfig::default()
            .with_env(env(&[(STEP_TIMEOUT_ENV, "20"), (METADATA_TIMEOUT_ENV, "25")]))
            .expect_err("metadata outlasts step");
        assert_eq!(err, TamiyoConfigError::MetadataOutlastsStep { metadata_ms: 25, step_ms: 20 });
    }
}
