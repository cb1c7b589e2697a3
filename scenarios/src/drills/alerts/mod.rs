//! The `alerts-match` invariant: Nissa's alert engine against an independent oracle.
//!
//! A drill's telemetry (as read back from the bus) is fed, metric sample by metric
//! sample, to Nissa's real [`AlertEngine`] with the RC1 rules, and every transition
//! it reports is noted with the evaluation (sample index) it came in. The
//! [`oracle`] reads the same rule table by itself and says in which evaluation each
//! alert must fire, escalate and clear; [`compare`] demands the two sequences be
//! equal, so an alert that fires late or early, without cause, or clears early,
//! late or never, fails the drill with the rule and both evaluations named.

mod compare;
mod oracle;

use std::collections::BTreeMap;

use esper_core::leyline::TelemetryPacket;
use esper_core::nissa::alerts::{AlertEngine, PrefetchRule, TrainingLatencyRule, Transition, default_rules};
use esper_core::planted::Planted;
use esper_sim::{Invariant, Violation};

use compare::first_mismatch;
use oracle::{Change, ChangeKind, Reading};

/// The run-tally groups the counts are reported under: `alerts_fired.<alert>` and
/// `alert_samples.<alert>`.
pub const TALLY_GROUPS: [&str; 2] = ["alerts_fired", "alert_samples"];

/// One rule's run: how many samples of its metric it was evaluated on, and how many
/// times it fired (episodes: an escalation is not counted again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounts {
    pub samples: u64,
    pub fired: u64,
}

impl RuleCounts {
    /// The counts in the order of [`TALLY_GROUPS`].
    pub fn by_group(self) -> [(&'static str, u64); 2] {
        [(TALLY_GROUPS[0], self.fired), (TALLY_GROUPS[1], self.samples)]
    }
}

/// Every catalog rule's counts, by alert name.
pub type AlertsFired = BTreeMap<String, RuleCounts>;

/// Checks the engine against the oracle on `telemetry`, in order; returns the
/// alerts that fired.
pub fn check_alerts(telemetry: &[TelemetryPacket], planted: Planted) -> Result<AlertsFired, Violation> {
    let rules = default_rules(TrainingLatencyRule::Rc1, PrefetchRule::Rc1);
    let mut engine = AlertEngine::new(rules.clone())
        .map_err(|error| Invariant::AlertsMatch.violated(format!("the RC1 alert rules do not validate: {error}")))?
        .with_planted(planted);
    let samples: Vec<(&str, f64)> = telemetry
        .iter()
        .flat_map(|packet| &packet.metrics)
        .filter(|point| point.value.is_finite())
        .map(|point| (point.name.as_str(), point.value))
        .collect();
    let mut transitions: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for (evaluation, (metric, value)) in (0_u64..).zip(&samples) {
        for transition in engine.evaluate(metric, *value, evaluation) {
            let (alert, kind) = match transition {
                Transition::Firing { alert, severity, .. } => (alert, ChangeKind::Fired(severity)),
                Transition::Resolved { alert, .. } => (alert, ChangeKind::Cleared),
            };
            transitions.entry(alert).or_default().push(Change { evaluation, kind });
        }
    }
    let mut fired = AlertsFired::new();
    for reading in rules.iter().map(Reading::of) {
        let own: Vec<(u64, f64)> = (0_u64..)
            .zip(&samples)
            .filter(|(_, (metric, _))| *metric == reading.metric)
            .map(|(evaluation, (_, value))| (evaluation, *value))
            .collect();
        let expected = reading.expected(own.iter().copied());
        let actual = transitions.remove(&reading.alert).unwrap_or_default();
        if let Some(detail) = first_mismatch(&reading.alert, &expected, &actual) {
            return Err(Invariant::AlertsMatch.violated(detail));
        }
        fired.insert(reading.alert, RuleCounts { samples: own.len() as u64, fired: episodes(&actual) });
    }
    match transitions.into_keys().next() {
        Some(stranger) => Err(Invariant::AlertsMatch.violated(format!("alert {stranger} is not in the rule table"))),
        None => Ok(fired),
    }
}

/// Firing episodes in `changes`: fired from quiet (an escalation is the same episode).
fn episodes(changes: &[Change]) -> u64 {
    let mut quiet = true;
    let mut count = 0;
    for change in changes {
        match change.kind {
            ChangeKind::Fired(_) if quiet => (quiet, count) = (false, count + 1),
            ChangeKind::Fired(_) => {}
            ChangeKind::Cleared => quiet = true,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use esper_core::leyline::{MetricPoint, TelemetryPacket};

    use super::*;

    fn packets(metric: &str, values: &[f64]) -> Vec<TelemetryPacket> {
        values
            .iter()
            .map(|value| TelemetryPacket {
                metrics: vec![MetricPoint::new(metric, *value, "ms")],
                ..TelemetryPacket::default()
            })
            .collect()
    }

    #[test]
    fn the_real_engine_matches_the_oracle_and_fired_alerts_are_counted_per_rule() {
        let latency = [10.0, 400.0, 500.0, 600.0, 20.0, 20.0, 900.0, 900.0, 900.0];
        let fired =
            check_alerts(&packets("tolaria.training.latency_ms", &latency), Planted::NONE).expect("the engine agrees");
        let latency_high = RuleCounts { samples: 9, fired: 2 };
        assert_eq!(fired["training_latency_high"], latency_high, "two episodes: 400–600 ms, then 900 ms escalating");
        assert_eq!(fired.values().map(|counts| counts.fired).sum::<u64>(), 2);
        let broken = [10.0, 400.0, 500.0, 20.0, 600.0];
        let fired =
            check_alerts(&packets("tolaria.training.latency_ms", &broken), Planted::NONE).expect("the engine agrees");
        assert_eq!(fired.values().map(|counts| counts.fired).sum::<u64>(), 0, "never three in a row");
    }

    #[test]
    fn samples_of_other_metrics_count_as_evaluations_but_do_not_touch_the_rule() {
        let mut telemetry = packets("tolaria.training.latency_ms", &[400.0, 400.0]);
        telemetry.extend(packets("tolaria.training.loss", &[0.5]));
        telemetry.extend(packets("tolaria.training.latency_ms", &[400.0]));
        assert_eq!(check_alerts(&telemetry, Planted::NONE).map(|fired| fired["training_latency_high"].fired), Ok(1));
    }

    #[test]
    fn episodes_count_fires_from_quiet_only() {
        use esper_core::nissa::alerts::Severity::{Critical, Warning};
        let change = |evaluation, kind| Change { evaluation, kind };
        let changes = [
            change(1, ChangeKind::Fired(Warning)),
            change(2, ChangeKind::Fired(Critical)),
            change(4, ChangeKind::Cleared),
            change(7, ChangeKind::Fired(Critical)),
        ];
        assert_eq!(episodes(&changes), 2);
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn an_engine_that_fires_one_evaluation_late_fails_the_check() {
        let late = Planted::bug(Some(esper_core::planted::PlantedBug::AlertFiresLate));
        let latency = [10.0, 400.0, 500.0, 600.0, 20.0, 20.0];
        let result = check_alerts(&packets("tolaria.training.latency_ms", &latency), late);
        assert_eq!(result.map_err(|violation| violation.invariant), Err(Invariant::AlertsMatch));
    }
}
