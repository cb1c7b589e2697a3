//! Which alert rules a `/metrics` scrape leaves unfed.
//!
//! A rule whose metric no producer sends never fires, and nothing says so: the
//! alert looks healthy forever. Esper-Lite shipped such a rule (`oona_queue_depth`
//! watched a name its client never emitted). [`unfed_alerts`] lists every rule
//! whose series — the Prometheus name its expression uses, derived from the rule's
//! Esper metric by [`prometheus_name`] — is absent from a scrape, so a test of a
//! live run can fail on it.

use super::AlertRule;
use crate::nissa::naming::prometheus_name;

/// A rule without a series in the scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfedAlert {
    pub alert: String,
    /// The Esper metric the rule watches.
    pub metric: String,
    /// The Prometheus series its expression names (empty when the metric has none).
    pub series: String,
}

/// The rules of `rules` whose series has no sample in `scrape` (Prometheus text
/// exposition), in catalog order. A series counts with any labels; a longer name
/// that merely starts with it (`esper_oona_queue_depth_max`) does not.
pub fn unfed_alerts(rules: &[AlertRule], scrape: &str) -> Vec<UnfedAlert> {
    let sampled: Vec<&str> = scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .filter(|name| !name.is_empty())
        .collect();
    rules
        .iter()
        .filter_map(|rule| {
            let series = prometheus_name(&rule.metric).map(|name| name.name).unwrap_or_default();
            let fed = !series.is_empty() && sampled.contains(&series.as_str());
            (!fed).then(|| UnfedAlert { alert: rule.name.clone(), metric: rule.metric.clone(), series })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nissa::alerts::{PrefetchRule, TrainingLatencyRule, default_rules};

    /// One sample of every catalog rule's series, as the exporter writes them.
    const FED: &str = "\
# TYPE esper_tolaria_training_latency_seconds gauge
esper_tolaria_training_latency_seconds{source=\"tolaria\"} 0.012
esper_kasmina_isolation_violations{source=\"kasmina\"} 0
esper_oona_queue_depth{source=\"oona\"} 3
esper_tezzeret_compile_retry_count_value{source=\"tezzeret\"} 0
esper_tolaria_rollback_restore_latency_seconds{source=\"tolaria\"} 0.004
esper_kasmina_prefetch_latency_seconds{source=\"kasmina\"} 0.03
";

    fn rules() -> Vec<AlertRule> {
        default_rules(TrainingLatencyRule::Rc1, PrefetchRule::Rc1)
    }

    #[test]
    fn a_scrape_with_every_series_feeds_every_alert() {
        assert_eq!(unfed_alerts(&rules(), FED), []);
    }

    #[test]
    fn an_alert_whose_series_is_missing_is_named() {
        let without: String = FED
            .lines()
            .filter(|line| !line.starts_with("esper_oona_queue_depth"))
            .map(|line| format!("{line}\n"))
            .collect();
        let with_a_longer_name = format!("{without}esper_oona_queue_depth_max{{source=\"oona\"}} 9\n");
        let unfed = unfed_alerts(&rules(), &with_a_longer_name);
        let expected = UnfedAlert {
            alert: "oona_queue_depth".to_owned(),
            metric: "oona.queue.depth".to_owned(),
            series: "esper_oona_queue_depth".to_owned(),
        };
        assert_eq!(unfed, [expected]);
    }

    #[test]
    fn a_type_line_alone_is_no_sample() {
        let typed_only = FED.replace("esper_tolaria_training_latency_seconds{source=\"tolaria\"} 0.012\n", "");
        let unfed = unfed_alerts(&rules(), &typed_only);
        assert_eq!(unfed.iter().map(|u| u.alert.as_str()).collect::<Vec<_>>(), ["training_latency_high"]);
    }
}
