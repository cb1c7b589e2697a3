//! The `alerts-match` invariant: Nissa's alert engine against an oracle.
//!
//! A drill's telemetry is fed, metric sample by metric sample, to Nissa's real
//! [`AlertEngine`] with the RC1 rules. Independently, the oracle reads each
//! rule's condition straight off the samples — "past the lowest threshold for
//! `for_count` samples in a row" — and where the condition ended — "back on the
//! good side of `clear_at` for `clear_count` samples in a row, at the end". An
//! alert that fired without its condition, a condition that held without its
//! alert, or an alert still firing after its condition ended fails the drill.

use std::collections::BTreeMap;

use esper_core::leyline::TelemetryPacket;
use esper_core::nissa::alerts::{AlertEngine, AlertRule, PrefetchRule, TrainingLatencyRule, Transition, default_rules};
use esper_core::planted::Planted;
use esper_sim::{Invariant, Violation};

/// Checks the engine (with `planted` armed) against the oracle on `telemetry`;
/// returns how many alerts fired.
pub fn check_alerts(telemetry: &[TelemetryPacket], planted: Planted) -> Result<usize, Violation> {
    let rules = default_rules(TrainingLatencyRule::Rc1, PrefetchRule::Rc1);
    let mut engine = AlertEngine::new(rules.clone())
        .map_err(|error| Invariant::AlertsMatch.violated(format!("the RC1 alert rules do not validate: {error}")))?
        .with_planted(planted);
    let mut samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut fired: BTreeMap<String, u32> = BTreeMap::new();
    let points = telemetry.iter().flat_map(|packet| &packet.metrics).filter(|point| point.value.is_finite());
    for (index, point) in points.enumerate() {
        samples.entry(point.name.as_str()).or_default().push(point.value);
        for transition in engine.evaluate(&point.name, point.value, index as u64) {
            if let Transition::Firing { alert, .. } = transition {
                *fired.entry(alert).or_default() += 1;
            }
        }
    }
    let active = engine.active();
    for rule in &rules {
        let values = samples.get(rule.metric.as_str()).map_or(&[][..], Vec::as_slice);
        let held = condition_held(rule, values);
        let did_fire = fired.contains_key(&rule.name);
        if held != did_fire {
            return Err(Invariant::AlertsMatch.violated(format!(
                "alert {} fired: {did_fire}, but its condition held: {held} ({} samples of {})",
                rule.name,
                values.len(),
                rule.metric
            )));
        }
        if active.contains_key(rule.name.as_str()) && condition_ended(rule, values) {
            return Err(Invariant::AlertsMatch.violated(format!(
                "alert {} is still firing though its last {} samples of {} were clear",
                rule.name, rule.clear_count, rule.metric
            )));
        }
    }
    Ok(fired.len())
}

/// `for_count` samples in a row past the rule's lowest threshold.
fn condition_held(rule: &AlertRule, values: &[f64]) -> bool {
    let Some(threshold) = rule.lowest_threshold() else { return false };
    let needed = rule.for_count as usize;
    let mut streak = 0;
    values.iter().any(|value| {
        streak = if rule.comparator.breaches(*value, threshold) { streak + 1 } else { 0 };
        streak >= needed
    })
}

/// The last `clear_count` samples are on the good side of `clear_at`.
fn condition_ended(rule: &AlertRule, values: &[f64]) -> bool {
    let needed = rule.clear_count as usize;
    values.len() >= needed
        && values[values.len() - needed..].iter().all(|value| !rule.comparator.breaches(*value, rule.clear_at))
}

#[cfg(test)]
mod tests {
    use esper_core::leyline::{MetricPoint, TelemetryPacket};

    use super::*;

    fn packet(latencies: &[f64]) -> Vec<TelemetryPacket> {
        latencies
            .iter()
            .map(|latency| TelemetryPacket {
                metrics: vec![MetricPoint::new("tolaria.training.latency_ms", *latency, "ms")],
                ..TelemetryPacket::default()
            })
            .collect()
    }

    #[test]
    fn three_slow_epochs_fire_and_two_fast_ones_clear() {
        assert_eq!(check_alerts(&packet(&[10.0, 400.0, 500.0, 600.0, 20.0, 20.0]), Planted::NONE), Ok(1));
        let never = check_alerts(&packet(&[10.0, 400.0, 500.0, 20.0, 600.0]), Planted::NONE);
        assert_eq!(never, Ok(0), "never three in a row");
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn an_engine_that_fires_one_evaluation_late_fails_the_check() {
        let late = Planted::bug(Some(esper_core::planted::PlantedBug::AlertFiresLate));
        let result = check_alerts(&packet(&[10.0, 400.0, 500.0, 600.0, 20.0, 20.0]), late);
        assert_eq!(result.map_err(|violation| violation.invariant), Err(Invariant::AlertsMatch));
    }

    #[test]
    fn the_oracle_reads_conditions_off_the_samples() {
        let rules = default_rules(TrainingLatencyRule::Rc1, PrefetchRule::Rc1);
        let latency = rules.iter().find(|rule| rule.name == "training_latency_high").expect("catalog rule");
        assert!(condition_held(latency, &[351.0, 352.0, 353.0]));
        assert!(!condition_held(latency, &[351.0, 350.0, 353.0]), "350 is not above 350");
        assert!(condition_ended(latency, &[900.0, 100.0, 300.0]));
        assert!(!condition_ended(latency, &[100.0, 301.0]), "301 is past clear_at 300");
    }
}
