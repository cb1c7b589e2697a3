//! Nissa's alert rules, with the thresholds from RC1 and the runbooks.
//!
//! Two rules have an alternative threshold set, chosen by configuration:
//! `training_latency_high` uses RC1's envelope (warning 350 ms, critical 800 ms;
//! RC1 epochs run 4–136 ms) or the runbook's 18 ms rule (Esper-Lite's
//! `alerts.py`, tuned for its tiny CPU model); the Kasmina prefetch rule uses
//! RC1's 45/60 ms band (prefetch ran 35–60 ms) or the looser 120/180 ms operator
//! thresholds. The rest are Esper-Lite's rules; rollback restore is critical past
//! 500 ms, twice Tolaria's 250 ms rollback deadline.

use super::{AlertRule, Comparator, Route};

/// Threshold sets for `training_latency_high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainingLatencyRule {
    /// RC1: warning above 350 ms, critical above 800 ms, three epochs in a row.
    #[default]
    Rc1,
    /// The runbook: above 18 ms for three epochs in a row (one level, critical).
    Runbook,
}

/// Threshold sets for `kasmina_prefetch_latency_high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefetchRule {
    /// RC1: warning above 45 ms, critical above 60 ms.
    #[default]
    Rc1,
    /// Operators' looser thresholds: warning above 120 ms, critical above 180 ms.
    Operator,
}

/// Names of the alerts the catalog defines.
pub const ALERT_NAMES: [&str; 6] = [
    "training_latency_high",
    "kasmina_isolation_violation",
    "oona_queue_depth",
    "tezzeret_compile_retry_high",
    "tolaria_rollback_restore_slow",
    "kasmina_prefetch_latency_high",
];

/// The rules under the chosen threshold sets.
pub fn default_rules(latency: TrainingLatencyRule, prefetch: PrefetchRule) -> Vec<AlertRule> {
    use Route::{Email, PagerDuty, Slack};
    let rule =
        |name: &str, metric: &str, levels: (Option<f64>, Option<f64>), counts: (u32, u32), clear_at: f64| AlertRule {
            name: name.to_owned(),
            metric: metric.to_owned(),
            comparator: Comparator::Above,
            warning: levels.0,
            critical: levels.1,
            for_count: counts.0,
            clear_at,
            clear_count: counts.1,
            routes: Vec::new(),
            summary: String::new(),
        };
    let latency = match latency {
        TrainingLatencyRule::Rc1 => (Some(350.0), Some(800.0), 300.0),
        TrainingLatencyRule::Runbook => (None, Some(18.0), 18.0),
    };
    let prefetch = match prefetch {
        PrefetchRule::Rc1 => (Some(45.0), Some(60.0), 40.0),
        PrefetchRule::Operator => (Some(120.0), Some(180.0), 100.0),
    };
    vec![
        AlertRule {
            routes: vec![PagerDuty, Slack],
            summary: "Tolaria epochs are slow three epochs in a row".to_owned(),
            ..rule("training_latency_high", "tolaria.training.latency_ms", (latency.0, latency.1), (3, 2), latency.2)
        },
        AlertRule {
            routes: vec![PagerDuty],
            summary: "Kasmina saw gradient isolation violations".to_owned(),
            ..rule("kasmina_isolation_violation", "kasmina.isolation.violations", (None, Some(3.0)), (1, 1), 1.0)
        },
        AlertRule {
            routes: vec![Slack],
            summary: "Oona's normal stream is backing up".to_owned(),
            ..rule("oona_queue_depth", "oona.queue.depth", (Some(4_000.0), None), (2, 1), 3_000.0)
        },
        AlertRule {
            routes: vec![Email],
            summary: "Tezzeret is retrying kernel compiles".to_owned(),
            ..rule("tezzeret_compile_retry_high", "tezzeret.compile.retry_count", (Some(1.0), None), (1, 1), 0.0)
        },
        AlertRule {
            routes: vec![PagerDuty],
            summary: "A Tolaria rollback restore took over 500 ms".to_owned(),
            ..rule(
                "tolaria_rollback_restore_slow",
                "tolaria.rollback.restore_latency_ms",
                (None, Some(500.0)),
                (1, 1),
                250.0,
            )
        },
        AlertRule {
            routes: vec![Slack],
            summary: "Kasmina kernel prefetches are slow".to_owned(),
            ..rule(
                "kasmina_prefetch_latency_high",
                "kasmina.prefetch.latency_ms",
                (prefetch.0, prefetch.1),
                (3, 2),
                prefetch.2,
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_rule_is_valid_and_named() {
        for latency in [TrainingLatencyRule::Rc1, TrainingLatencyRule::Runbook] {
            for prefetch in [PrefetchRule::Rc1, PrefetchRule::Operator] {
                let rules = default_rules(latency, prefetch);
                let names: Vec<&str> = rules.iter().map(|rule| rule.name.as_str()).collect();
                assert_eq!(names, ALERT_NAMES);
                for rule in &rules {
                    rule.validate().unwrap_or_else(|error| panic!("{error}"));
                    assert!(!rule.routes.is_empty() && !rule.summary.is_empty(), "{}", rule.name);
                }
            }
        }
    }
}
