//! The alerts oracle: when each alert must fire and clear, read straight off the
//! rule table and the samples, without Nissa's engine.
//!
//! The oracle re-reads each [`AlertRule`] as plain data — which metric, which way is
//! bad, the warning and critical thresholds, how many bad samples in a row fire it,
//! the clear level and how many calm samples in a row clear it — and restates the
//! comparisons itself, so a bug in the engine's breach, streak or hysteresis logic
//! cannot hide by being shared with its judge. What it produces is a schedule: for
//! every firing and clearing episode, the evaluation (sample index) it must happen in.

use esper_core::nissa::alerts::{AlertRule, Comparator, Severity};

/// One change of an alert's state, in the evaluation it happened in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// The index of the sample (in the run's sample order) whose evaluation made it.
    pub evaluation: u64,
    pub kind: ChangeKind,
}

/// Fired (or escalated) at a severity, or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Fired(Severity),
    Cleared,
}

/// The oracle's own reading of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub alert: String,
    pub metric: String,
    /// True when values above a threshold are bad, false when values below are.
    bad_above: bool,
    warning: Option<f64>,
    critical: Option<f64>,
    fire_after: u32,
    clear_level: f64,
    clear_after: u32,
}

impl Reading {
    /// Reads `rule`'s fields (no engine helper is asked anything).
    pub fn of(rule: &AlertRule) -> Self {
        Self {
            alert: rule.name.clone(),
            metric: rule.metric.clone(),
            bad_above: match rule.comparator {
                Comparator::Above => true,
                Comparator::Below => false,
            },
            warning: rule.warning,
            critical: rule.critical,
            fire_after: rule.for_count,
            clear_level: rule.clear_at,
            clear_after: rule.clear_count,
        }
    }

    /// Strictly past `threshold` on the bad side.
    fn past(&self, value: f64, threshold: f64) -> bool {
        if self.bad_above { value > threshold } else { value < threshold }
    }

    /// The changes the rule must make over `samples` (evaluation index, value),
    /// which are this rule's metric only, in order.
    ///
    /// A run of `fire_after` samples past the warning (critical) threshold fires
    /// the alert at warning (critical) in the sample that completes the run, and a
    /// critical run escalates a warning alert; a firing alert clears in the sample
    /// that completes a run of `clear_after` samples at or on the good side of the
    /// clear level. A sample between the clear level and the threshold keeps the
    /// alert as it is but breaks the calm run.
    pub fn expected(&self, samples: impl IntoIterator<Item = (u64, f64)>) -> Vec<Change> {
        let mut changes = Vec::new();
        let (mut warning_run, mut critical_run, mut calm_run) = (0_u32, 0_u32, 0_u32);
        let mut firing: Option<Severity> = None;
        for (evaluation, value) in samples {
            let critical = self.critical.is_some_and(|threshold| self.past(value, threshold));
            let warning = critical || self.warning.is_some_and(|threshold| self.past(value, threshold));
            warning_run = if warning { warning_run + 1 } else { 0 };
            critical_run = if critical { critical_run + 1 } else { 0 };
            let earned = if critical_run >= self.fire_after {
                Some(Severity::Critical)
            } else if self.warning.is_some() && warning_run >= self.fire_after {
                Some(Severity::Warning)
            } else {
                None
            };
            if earned > firing {
                firing = earned;
                calm_run = 0;
                changes.extend(earned.map(|severity| Change { evaluation, kind: ChangeKind::Fired(severity) }));
                continue;
            }
            if firing.is_none() {
                continue;
            }
            calm_run = if self.past(value, self.clear_level) { 0 } else { calm_run + 1 };
            if calm_run >= self.clear_after {
                firing = None;
                calm_run = 0;
                changes.push(Change { evaluation, kind: ChangeKind::Cleared });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use esper_core::nissa::alerts::{PrefetchRule, TrainingLatencyRule, default_rules};

    use super::*;

    fn reading(alert: &str, latency: TrainingLatencyRule) -> Reading {
        let rules = default_rules(latency, PrefetchRule::Rc1);
        Reading::of(rules.iter().find(|rule| rule.name == alert).expect("a catalog rule"))
    }

    fn schedule(reading: &Reading, values: &[f64]) -> Vec<(u64, ChangeKind)> {
        let samples = values.iter().enumerate().map(|(index, value)| (index as u64, *value));
        reading.expected(samples).into_iter().map(|change| (change.evaluation, change.kind)).collect()
    }

    #[test]
    fn latency_fires_in_the_third_slow_sample_escalates_and_clears_after_two_calm_ones() {
        use ChangeKind::{Cleared, Fired};
        let latency = reading("training_latency_high", TrainingLatencyRule::Rc1);
        let values = [400.0, 400.0, 900.0, 900.0, 900.0, 320.0, 100.0, 310.0, 100.0, 90.0];
        let expected = [(2, Fired(Severity::Warning)), (4, Fired(Severity::Critical)), (9, Cleared)];
        assert_eq!(schedule(&latency, &values), expected);
    }

    #[test]
    fn thresholds_are_strict_and_a_break_restarts_the_run() {
        let latency = reading("training_latency_high", TrainingLatencyRule::Rc1);
        assert_eq!(schedule(&latency, &[351.0, 350.0, 353.0, 352.0]), [], "350 is not above 350");
        assert_eq!(schedule(&latency, &[351.0, 352.0, 353.0]), [(2, ChangeKind::Fired(Severity::Warning))]);
    }

    #[test]
    fn a_critical_only_rule_fires_critical_and_clears_at_or_under_its_clear_level() {
        use ChangeKind::{Cleared, Fired};
        let restore = reading("tolaria_rollback_restore_slow", TrainingLatencyRule::Rc1);
        let values = [501.0, 250.0, 499.0, 600.0, 260.0, 240.0];
        assert_eq!(
            schedule(&restore, &values),
            [(0, Fired(Severity::Critical)), (1, Cleared), (3, Fired(Severity::Critical)), (5, Cleared)]
        );
    }

    #[test]
    fn a_below_rule_is_bad_under_its_threshold() {
        let mut rule = default_rules(TrainingLatencyRule::Rc1, PrefetchRule::Rc1).remove(0);
        (rule.comparator, rule.warning, rule.critical, rule.clear_at) = (Comparator::Below, Some(0.7), None, 0.8);
        let coverage = Reading::of(&rule);
        let values = [0.6, 0.5, 0.65, 0.75, 0.9, 0.95];
        assert_eq!(schedule(&coverage, &values), [(2, ChangeKind::Fired(Severity::Warning)), (5, ChangeKind::Cleared)]);
    }
}
