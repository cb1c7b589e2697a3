//! Alert rules: which metric, which thresholds, how many samples in a row.
//!
//! A rule is Esper-Lite's `{name, metric, threshold, comparator, for_count,
//! routes}` with two additions: a second, critical threshold (RC1 gives a warning
//! and a critical level for several alerts), and hysteresis — once firing, an
//! alert clears only after `clear_count` samples in a row at or past `clear_at`,
//! so a value hovering at the threshold does not flap.

use super::{Route, Severity};

/// Which way a metric goes bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparator {
    /// Bad above the threshold.
    Above,
    /// Bad below the threshold.
    Below,
}

impl Comparator {
    /// Whether `value` is past `threshold` in the bad direction.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::Below => value < threshold,
        }
    }

    /// The PromQL operator.
    pub fn promql(self) -> &'static str {
        match self {
            Self::Above => ">",
            Self::Below => "<",
        }
    }
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRule {
    /// Alert name, e.g. `training_latency_high`.
    pub name: String,
    /// The Esper metric it watches, e.g. `tolaria.training.latency_ms`.
    pub metric: String,
    /// Which way is bad.
    pub comparator: Comparator,
    /// Warning threshold, if the rule has a warning level.
    pub warning: Option<f64>,
    /// Critical threshold, if the rule has a critical level.
    pub critical: Option<f64>,
    /// Samples in a row past a threshold before the alert fires at that level.
    pub for_count: u32,
    /// Hysteresis: a firing alert counts a sample towards clearing only when it
    /// is at or on the good side of this value (not merely under the threshold).
    pub clear_at: f64,
    /// Clearing samples in a row before the alert resolves.
    pub clear_count: u32,
    /// Where notifications go.
    pub routes: Vec<Route>,
    /// One line for operators (and the Prometheus rule's annotation).
    pub summary: String,
}

/// A rule that cannot work as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertRuleError {
    #[error("alert {name}: needs a warning or a critical threshold")]
    NoThreshold { name: String },
    #[error("alert {name}: for_count and clear_count must be at least 1")]
    ZeroCount { name: String },
    #[error("alert {name}: the critical threshold must be past the warning threshold")]
    CriticalBeforeWarning { name: String },
    #[error("alert {name}: clear_at {clear_at} must be on the good side of the lowest threshold {threshold}")]
    ClearPastThreshold { name: String, clear_at: f64, threshold: f64 },
    #[error("alert {name}: thresholds must be finite numbers")]
    NotFinite { name: String },
}

impl AlertRule {
    /// The first threshold a value crosses on its way to bad.
    pub fn lowest_threshold(&self) -> Option<f64> {
        self.warning.or(self.critical)
    }

    /// The level `value` is at, if it breaches any threshold.
    pub fn level(&self, value: f64) -> Option<Severity> {
        let past = |threshold: Option<f64>| threshold.is_some_and(|t| self.comparator.breaches(value, t));
        if past(self.critical) {
            Some(Severity::Critical)
        } else if past(self.warning) {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    /// Whether `value` counts towards clearing a firing alert.
    pub fn is_clear(&self, value: f64) -> bool {
        !self.comparator.breaches(value, self.clear_at)
    }

    /// Checks the rule's numbers against each other.
    pub fn validate(&self) -> Result<(), AlertRuleError> {
        let name = self.name.clone();
        let Some(lowest) = self.lowest_threshold() else { return Err(AlertRuleError::NoThreshold { name }) };
        let numbers = [self.warning, self.critical, Some(self.clear_at)];
        if numbers.into_iter().flatten().any(|value| !value.is_finite()) {
            return Err(AlertRuleError::NotFinite { name });
        }
        if self.for_count == 0 || self.clear_count == 0 {
            return Err(AlertRuleError::ZeroCount { name });
        }
        if let (Some(warning), Some(critical)) = (self.warning, self.critical) {
            if !self.comparator.breaches(critical, warning) {
                return Err(AlertRuleError::CriticalBeforeWarning { name });
            }
        }
        if self.comparator.breaches(self.clear_at, lowest) {
            return Err(AlertRuleError::ClearPastThreshold { name, clear_at: self.clear_at, threshold: lowest });
        }
        Ok(())
    }
}
