//! The alert engine: evaluates each rule on every sample of its metric.
//!
//! One evaluation per sample, in ingest order. A rule keeps two streaks (samples
//! in a row past its warning and its critical threshold); the alert fires in the
//! very evaluation a streak reaches `for_count`, escalates to critical the same
//! way, and resolves after `clear_count` samples in a row at or past `clear_at`.
//! Samples between `clear_at` and the threshold hold a firing alert as it is.
//! A sample of another metric never touches a rule, so interleaved sources do
//! not reset each other's streaks.

use std::collections::BTreeMap;

use super::{AlertRule, AlertRuleError, Route, Severity};
use crate::planted::{Planted, PlantedBug};

/// A firing alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActiveAlert {
    /// The metric the rule watches.
    pub metric: String,
    /// The highest level reached since it fired.
    pub severity: Severity,
    /// Unix ms it fired.
    pub since_ms: u64,
    /// The latest sample.
    pub value: f64,
    /// Where its notifications go.
    pub routes: Vec<Route>,
}

/// A change of an alert's state, to be notified.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Fired (or escalated) at `severity`.
    Firing { alert: String, severity: Severity, value: f64, routes: Vec<Route> },
    /// Resolved; `severity` is the level it had.
    Resolved { alert: String, severity: Severity, value: f64, routes: Vec<Route> },
}

#[derive(Debug, Clone, Default)]
struct RuleState {
    warning_streak: u32,
    critical_streak: u32,
    clear_streak: u32,
    active: Option<ActiveAlert>,
}

/// Every rule and its state.
#[derive(Debug, Clone)]
pub struct AlertEngine {
    rules: Vec<AlertRule>,
    states: Vec<RuleState>,
    /// Rule indices by watched metric.
    by_metric: BTreeMap<String, Vec<usize>>,
    evaluations: u64,
    /// The planted bug a drill arms (test builds only; see [`crate::planted`]).
    planted: Planted,
}

impl AlertEngine {
    /// An engine for `rules`, each checked first.
    pub fn new(rules: Vec<AlertRule>) -> Result<Self, AlertRuleError> {
        let mut by_metric: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, rule) in rules.iter().enumerate() {
            rule.validate()?;
            by_metric.entry(rule.metric.clone()).or_default().push(index);
        }
        Ok(Self {
            states: vec![RuleState::default(); rules.len()],
            rules,
            by_metric,
            evaluations: 0,
            planted: Planted::NONE,
        })
    }

    /// The same engine with `planted` armed.
    pub fn with_planted(self, planted: Planted) -> Self {
        Self { planted, ..self }
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Whether some rule watches `metric`.
    pub fn watches(&self, metric: &str) -> bool {
        self.by_metric.contains_key(metric)
    }

    /// Rule evaluations so far (one per rule per sample of its metric).
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// Evaluates every rule watching `metric` on one finite sample.
    pub fn evaluate(&mut self, metric: &str, value: f64, now_ms: u64) -> Vec<Transition> {
        debug_assert!(value.is_finite(), "the ingestor filters non-finite samples");
        let Some(indices) = self.by_metric.get(metric) else { return Vec::new() };
        let mut transitions = Vec::new();
        let late = self.planted.armed(PlantedBug::AlertFiresLate);
        for &index in indices {
            let (rule, state) = (&self.rules[index], &mut self.states[index]);
            transitions.extend(step(rule, state, value, now_ms, late));
            self.evaluations += 1;
        }
        transitions
    }

    /// Firing alerts by name.
    pub fn active(&self) -> BTreeMap<&str, &ActiveAlert> {
        self.rules
            .iter()
            .zip(&self.states)
            .filter_map(|(rule, state)| state.active.as_ref().map(|active| (rule.name.as_str(), active)))
            .collect()
    }
}

/// One rule, one sample.
/// `late` is the planted `alert-fires-late` bug: a streak must exceed the rule's
/// count rather than reach it, so every alert fires one evaluation late.
fn step(rule: &AlertRule, state: &mut RuleState, value: f64, now_ms: u64, late: bool) -> Option<Transition> {
    let level = rule.level(value);
    state.warning_streak = if level.is_some() { state.warning_streak + 1 } else { 0 };
    state.critical_streak = if level == Some(Severity::Critical) { state.critical_streak + 1 } else { 0 };
    let reached = |streak: u32| if late { streak > rule.for_count } else { streak >= rule.for_count };
    let due = if reached(state.critical_streak) {
        Some(Severity::Critical)
    } else if reached(state.warning_streak) && rule.warning.is_some() {
        Some(Severity::Warning)
    } else {
        None
    };
    let firing =
        |severity| Transition::Firing { alert: rule.name.clone(), severity, value, routes: rule.routes.clone() };
    let Some(active) = state.active.as_mut() else {
        let severity = due?;
        state.clear_streak = 0;
        state.active = Some(ActiveAlert {
            metric: rule.metric.clone(),
            severity,
            since_ms: now_ms,
            value,
            routes: rule.routes.clone(),
        });
        tracing::warn!(alert = %rule.name, severity = severity.as_str(), value, "nissa: alert firing");
        return Some(firing(severity));
    };
    active.value = value;
    if let Some(severity) = due.filter(|severity| *severity > active.severity) {
        active.severity = severity;
        state.clear_streak = 0;
        tracing::warn!(alert = %rule.name, severity = severity.as_str(), value, "nissa: alert escalated");
        return Some(firing(severity));
    }
    state.clear_streak = if level.is_none() && rule.is_clear(value) { state.clear_streak + 1 } else { 0 };
    if state.clear_streak < rule.clear_count {
        return None;
    }
    let severity = active.severity;
    state.active = None;
    state.clear_streak = 0;
    tracing::info!(alert = %rule.name, value, "nissa: alert resolved");
    Some(Transition::Resolved { alert: rule.name.clone(), severity, value, routes: rule.routes.clone() })
}

#[cfg(test)]
mod tests {
    use super::super::{PrefetchRule, TrainingLatencyRule, default_rules};
    use super::*;

    fn engine(latency: TrainingLatencyRule) -> AlertEngine {
        AlertEngine::new(default_rules(latency, PrefetchRule::Rc1)).expect("valid rules")
    }

    /// Feeds `values` and returns, after each, the active severity of `alert`.
    fn run(engine: &mut AlertEngine, metric: &str, alert: &str, values: &[f64]) -> Vec<Option<Severity>> {
        values
            .iter()
            .enumerate()
            .map(|(at, value)| {
                engine.evaluate(metric, *value, at as u64);
                engine.active().get(alert).map(|active| active.severity)
            })
            .collect()
    }

    #[test]
    fn latency_fires_on_the_third_slow_epoch_escalates_and_clears_with_hysteresis() {
        use Severity::{Critical, Warning};
        let mut engine = engine(TrainingLatencyRule::Rc1);
        let metric = "tolaria.training.latency_ms";
        let seen = run(
            &mut engine,
            metric,
            "training_latency_high",
            &[400.0, 400.0, 900.0, 900.0, 900.0, 320.0, 100.0, 310.0, 100.0, 90.0],
        );
        let expected = [
            None,
            None,
            Some(Warning), // third epoch above 350
            Some(Warning),
            Some(Critical), // third epoch above 800
            Some(Critical), // 320: inside the band, holds
            Some(Critical), // first clear sample
            Some(Critical), // 310 in the band resets the clear streak
            Some(Critical),
            None, // second clear sample in a row
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_break_in_the_streak_restarts_it_and_other_metrics_do_not() {
        let mut engine = engine(TrainingLatencyRule::Runbook);
        let metric = "tolaria.training.latency_ms";
        assert_eq!(run(&mut engine, metric, "training_latency_high", &[25.0, 25.0, 10.0, 25.0, 25.0]), [None; 5]);
        engine.evaluate("tolaria.training.loss", 0.5, 5);
        let seen = run(&mut engine, metric, "training_latency_high", &[25.0]);
        assert_eq!(seen, [Some(Severity::Critical)], "the loss sample did not break the streak");
        let seen = run(&mut engine, metric, "training_latency_high", &[10.0, 9.0]);
        assert_eq!(seen, [Some(Severity::Critical), None], "runbook drill: 10 then 9 clears");
    }

    #[test]
    fn transitions_name_the_routes() {
        let mut engine = engine(TrainingLatencyRule::Rc1);
        let fired = engine.evaluate("kasmina.isolation.violations", 5.0, 1);
        let resolved = engine.evaluate("kasmina.isolation.violations", 0.0, 2);
        assert_eq!(
            (fired, resolved),
            (
                vec![Transition::Firing {
                    alert: "kasmina_isolation_violation".into(),
                    severity: Severity::Critical,
                    value: 5.0,
                    routes: vec![Route::PagerDuty]
                }],
                vec![Transition::Resolved {
                    alert: "kasmina_isolation_violation".into(),
                    severity: Severity::Critical,
                    value: 0.0,
                    routes: vec![Route::PagerDuty]
                }],
            )
        );
    }
}
