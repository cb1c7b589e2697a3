//! Nissa's Prometheus registry: fixed counters for what it ingests, and one
//! series per ingested Esper metric name (named by [`super::naming`]).
//!
//! Every metric lives in one `prometheus::Registry`, rendered by the text
//! encoder for `/metrics`. Ingested names are outside input, so they are bounded:
//! at most `max_metric_names` distinct names and `max_sources` distinct sources
//! (later sources are labelled `other`); a name the naming rule refuses, or one
//! whose Prometheus name collides with a metric of another shape, is counted in
//! `esper_ingest_rejected_metrics_total{reason}` and skipped.
//!
//! Point attributes become labels, so `kasmina.prefetch.requests_total{status}`
//! and per-seed series stay apart instead of collapsing into one. Only the keys
//! in [`LABEL_ALLOW_LIST`] are kept (others are outside input with no bound);
//! a metric's label names are fixed by the first point seen (a later point
//! lacking one gets the empty value, which Prometheus reads as unset); and one
//! metric has at most [`MAX_SERIES_PER_METRIC`] label sets — a point that would
//! add one more is counted (`reason="too_many_series"`) and dropped.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::{
    Counter, CounterVec, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use super::alerts::{NotificationState, Route};
use super::naming::{PromKind, PromName, label_value, prometheus_name};

/// Histogram buckets for ingested latencies, in seconds. Every alert threshold
/// (18, 45, 60, 120, 180, 350, 500, 800 ms) is a bucket bound, so PromQL can count
/// the samples above each.
pub const LATENCY_BUCKETS_SECONDS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.018, 0.025, 0.045, 0.05, 0.06, 0.1, 0.12, 0.18, 0.25, 0.35, 0.5, 0.8, 1.0, 2.5, 5.0,
    10.0,
];

/// The `reason`s of `esper_ingest_rejected_total`.
pub const REJECTED_MESSAGE_REASONS: [&str; 3] =
    ["undecodable_telemetry", "undecodable_system_state", "undecodable_field_report"];

/// Longest `source` label value kept.
const SOURCE_LABEL_CHARS: usize = 64;

/// Point attributes kept as labels, in label order: the ones Esper's producers
/// set with values from small sets (prefetch status, seed ids, services, streams).
pub const LABEL_ALLOW_LIST: [&str; 4] = ["seed", "service", "status", "stream"];

/// Distinct label sets (sources included) one ingested metric may have.
pub const MAX_SERIES_PER_METRIC: usize = 64;

/// Longest attribute label value kept.
const ATTRIBUTE_LABEL_CHARS: usize = 64;

/// Why an ingested metric point was not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricRejection {
    /// The naming rule refused the name.
    Unnamable,
    /// `max_metric_names` distinct names are already exported.
    TooManyNames,
    /// Its Prometheus name is taken by a metric of another shape.
    Collision,
    /// NaN or infinite.
    NonFinite,
    /// The metric already has [`MAX_SERIES_PER_METRIC`] label sets.
    TooManySeries,
}

impl MetricRejection {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unnamable => "unnamable",
            Self::TooManyNames => "too_many_names",
            Self::Collision => "collision",
            Self::NonFinite => "non_finite",
            Self::TooManySeries => "too_many_series",
        }
    }
}

/// The series behind one ingested name.
#[derive(Debug, Clone)]
enum Series {
    Gauge { gauge: GaugeVec, histogram: Option<HistogramVec>, unit: PromName },
    Counter { counter: CounterVec, unit: PromName },
}

/// One ingested name: its series, the attribute keys it is labelled by, and the
/// label sets (`source` first) it has so far.
#[derive(Debug, Clone)]
struct Dynamic {
    series: Series,
    attribute_labels: Vec<&'static str>,
    label_sets: BTreeSet<Vec<String>>,
}

/// The fixed metrics and the dynamic series, in one registry.
#[derive(Debug, Clone)]
pub struct Exporter {
    registry: Registry,
    pub(super) telemetry_packets: IntCounterVec,
    pub(super) telemetry_parts_missing: IntCounterVec,
    pub(super) system_state_packets: IntCounterVec,
    pub(super) field_reports: IntCounterVec,
    pub(super) simic_reward: CounterVec,
    pub(super) simic_iterations: IntCounter,
    pub(super) rejected_messages: IntCounterVec,
    pub(super) rejected_metrics: IntCounterVec,
    pub(super) alert_active: GaugeVec,
    pub(super) notifications: IntCounterVec,
    pub(super) slo_samples: IntCounterVec,
    pub(super) slo_violations: IntCounterVec,
    pub(super) slo_burn_rate: GaugeVec,
    pub(super) bus: IntCounterVec,
    pub(super) redis_up: IntGauge,
    pub(super) index_documents: IntCounterVec,
    pub(super) index_fallback_active: IntGauge,
    pub(super) http_shed: IntCounterVec,
    dynamic: BTreeMap<String, Dynamic>,
    /// Last running total seen per (Esper name, label set), for counters.
    running_totals: BTreeMap<(String, Vec<String>), f64>,
    sources: BTreeSet<String>,
    max_metric_names: usize,
    max_sources: usize,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|error| bad_fixed(name, &error));
    register(registry, name, metric)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let metric = GaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|error| bad_fixed(name, &error));
    register(registry, name, metric)
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, name: &str, metric: M) -> M {
    registry.register(Box::new(metric.clone())).unwrap_or_else(|error| bad_fixed(name, &error));
    metric
}

/// The fixed metrics have constant, valid, distinct names: failing to create or
/// register one is a bug in this file, caught by every test that builds an exporter.
fn bad_fixed(name: &str, error: &prometheus::Error) -> ! {
    panic!("Nissa's fixed metric {name} is invalid: {error}")
}

impl Exporter {
    /// A registry with the fixed metrics and room for `max_metric_names` ingested
    /// names from `max_sources` sources.
    pub fn new(max_metric_names: usize, max_sources: usize) -> Self {
        let registry = Registry::new();
        let r = &registry;
        let simic_reward = CounterVec::new(
            Opts::new(
                "esper_simic_training_reward_total",
                "Sum of Simic training rewards, by sign (net reward = positive - negative).",
            ),
            &["sign"],
        )
        .unwrap_or_else(|error| bad_fixed("esper_simic_training_reward_total", &error));
        let simic_iterations =
            IntCounter::new("esper_simic_training_iterations_total", "Simic training iterations reported.")
                .unwrap_or_else(|error| bad_fixed("esper_simic_training_iterations_total", &error));
        let redis_up = IntGauge::new("esper_nissa_redis_up", "1 when Nissa's last Redis round succeeded.")
            .unwrap_or_else(|error| bad_fixed("esper_nissa_redis_up", &error));
        let fallback = IntGauge::new(
            "esper_index_fallback_active",
            "1 while documents go to the in-memory index instead of Elasticsearch.",
        )
        .unwrap_or_else(|error| bad_fixed("esper_index_fallback_active", &error));
        let exporter = Self {
            telemetry_packets: counter_vec(
                r,
                "esper_telemetry_packets_total",
                "Telemetry packets ingested.",
                &["source"],
            ),
            telemetry_parts_missing: counter_vec(
                r,
                "esper_telemetry_parts_missing_total",
                "Parts of split telemetry packets that never arrived.",
                &["source"],
            ),
            system_state_packets: counter_vec(
                r,
                "esper_system_state_packets_total",
                "System state packets ingested, by the furthest lifecycle stage among their seeds.",
                &["phase"],
            ),
            field_reports: counter_vec(r, "esper_field_reports_total", "Field reports ingested.", &["outcome"]),
            simic_reward: register(r, "esper_simic_training_reward_total", simic_reward),
            simic_iterations: register(r, "esper_simic_training_iterations_total", simic_iterations),
            rejected_messages: counter_vec(
                r,
                "esper_ingest_rejected_total",
                "Bus messages Nissa could not use (dead-lettered).",
                &["reason"],
            ),
            rejected_metrics: counter_vec(
                r,
                "esper_ingest_rejected_metrics_total",
                "Metric points not exported.",
                &["reason"],
            ),
            alert_active: gauge_vec(r, "esper_alert_active", "1 while the alert fires.", &["alert", "severity"]),
            notifications: counter_vec(
                r,
                "esper_alert_notifications_total",
                "Alert notifications sent to each route stub.",
                &["route", "state"],
            ),
            slo_samples: counter_vec(r, "esper_slo_samples_total", "SLO samples (actual/objective pairs).", &["slo"]),
            slo_violations: counter_vec(
                r,
                "esper_slo_violations_total",
                "SLO samples whose actual exceeded the objective.",
                &["slo"],
            ),
            slo_burn_rate: gauge_vec(
                r,
                "esper_slo_burn_rate",
                "Violations / samples over the window.",
                &["slo", "window"],
            ),
            bus: counter_vec(
                r,
                "esper_nissa_bus_events_total",
                "Nissa's own Oona consumer counters (consumed, acked, dead-lettered...).",
                &["event"],
            ),
            redis_up: register(r, "esper_nissa_redis_up", redis_up),
            index_documents: counter_vec(
                r,
                "esper_index_documents_total",
                "Documents handed to the index.",
                &["index", "backend", "outcome"],
            ),
            index_fallback_active: register(r, "esper_index_fallback_active", fallback),
            http_shed: counter_vec(
                r,
                "esper_nissa_http_shed_total",
                "Connections and requests Nissa's HTTP server refused or closed to protect itself.",
                &["reason"],
            ),
            registry,
            dynamic: BTreeMap::new(),
            running_totals: BTreeMap::new(),
            sources: BTreeSet::new(),
            max_metric_names,
            max_sources,
        };
        exporter.initialise_known_labels();
        exporter
    }

    /// Creates the series whose label values are known in advance at zero, so
    /// they exist (and `rate()` works) before the first event.
    fn initialise_known_labels(&self) {
        for reason in REJECTED_MESSAGE_REASONS {
            self.rejected_messages.with_label_values(&[reason]);
        }
        for reason in [
            MetricRejection::Unnamable,
            MetricRejection::TooManyNames,
            MetricRejection::Collision,
            MetricRejection::NonFinite,
            MetricRejection::TooManySeries,
        ] {
            self.rejected_metrics.with_label_values(&[reason.label()]);
        }
        for route in [Route::Slack, Route::PagerDuty, Route::Email] {
            for state in [NotificationState::Firing, NotificationState::Resolved] {
                self.notifications.with_label_values(&[route.as_str(), state.as_str()]);
            }
        }
    }

    /// The `source` label for `source`: itself (cut to 64 characters) while fewer
    /// than `max_sources` are known, `other` after.
    pub fn source_label(&mut self, source: &str) -> String {
        let label = label_value(if source.is_empty() { "unknown" } else { source }, SOURCE_LABEL_CHARS);
        if self.sources.contains(&label) {
            return label;
        }
        if self.sources.len() >= self.max_sources {
            return "other".to_owned();
        }
        self.sources.insert(label.clone());
        label
    }

    /// Exports one ingested metric point from `source` (already a label), with
    /// its allow-listed `attributes` as labels.
    pub fn observe(
        &mut self,
        esper_name: &str,
        source: &str,
        attributes: &BTreeMap<String, String>,
        value: f64,
    ) -> Result<(), MetricRejection> {
        let outcome = self.try_observe(esper_name, source, attributes, value);
        if let Err(rejection) = outcome {
            self.rejected_metrics.with_label_values(&[rejection.label()]).inc();
        }
        outcome
    }

    fn try_observe(
        &mut self,
        esper_name: &str,
        source: &str,
        attributes: &BTreeMap<String, String>,
        value: f64,
    ) -> Result<(), MetricRejection> {
        if !value.is_finite() {
            return Err(MetricRejection::NonFinite);
        }
        if !self.dynamic.contains_key(esper_name) {
            self.create(esper_name, attributes)?;
        }
        let Some(dynamic) = self.dynamic.get_mut(esper_name) else {
            return Err(MetricRejection::Unnamable);
        };
        let mut labels = vec![source.to_owned()];
        labels.extend(
            dynamic
                .attribute_labels
                .iter()
                .map(|key| label_value(attributes.get(*key).map_or("", String::as_str), ATTRIBUTE_LABEL_CHARS)),
        );
        if !dynamic.label_sets.contains(&labels) {
            if dynamic.label_sets.len() >= MAX_SERIES_PER_METRIC {
                return Err(MetricRejection::TooManySeries);
            }
            dynamic.label_sets.insert(labels.clone());
        }
        let values: Vec<&str> = labels.iter().map(String::as_str).collect();
        match &dynamic.series {
            Series::Gauge { gauge, histogram, unit } => {
                gauge.with_label_values(&values).set(unit.to_base(value));
                if let Some(histogram) = histogram {
                    histogram.with_label_values(&values).observe(unit.to_base(value));
                }
            }
            Series::Counter { counter, unit } => {
                let counter = counter.with_label_values(&values);
                let last = self.running_totals.insert((esper_name.to_owned(), labels), value).unwrap_or(0.0);
                // A running total that went down means the producer restarted and
                // counts from zero again: all of the new value is new.
                let delta = if value >= last { value - last } else { value };
                if delta > 0.0 {
                    counter.inc_by(unit.to_base(delta));
                }
            }
        }
        Ok(())
    }

    /// Registers the series for a name seen for the first time, labelled by
    /// `source` and the allow-listed keys among `attributes`.
    fn create(&mut self, esper_name: &str, attributes: &BTreeMap<String, String>) -> Result<(), MetricRejection> {
        if self.dynamic.len() >= self.max_metric_names {
            return Err(MetricRejection::TooManyNames);
        }
        let unit = prometheus_name(esper_name).ok_or(MetricRejection::Unnamable)?;
        let attribute_labels: Vec<&'static str> =
            LABEL_ALLOW_LIST.into_iter().filter(|key| attributes.contains_key(*key)).collect();
        let mut label_names = vec!["source"];
        label_names.extend(&attribute_labels);
        let name = unit.name.clone();
        let help = format!("Esper metric {esper_name} (last value, base unit)");
        let series = match unit.kind {
            PromKind::Gauge => {
                let gauge = GaugeVec::new(Opts::new(name.clone(), help), &label_names)
                    .map_err(|_| MetricRejection::Unnamable)?;
                self.registry.register(Box::new(gauge.clone())).map_err(|_| MetricRejection::Collision)?;
                let histogram = match unit.seconds.then(|| self.histogram(esper_name, &name, &label_names)).transpose()
                {
                    Ok(histogram) => histogram,
                    Err(rejection) => {
                        let _unregistered = self.registry.unregister(Box::new(gauge));
                        return Err(rejection);
                    }
                };
                Series::Gauge { gauge, histogram, unit }
            }
            PromKind::Counter => {
                let help = format!("Esper metric {esper_name} (running total, base unit)");
                let counter =
                    CounterVec::new(Opts::new(name, help), &label_names).map_err(|_| MetricRejection::Unnamable)?;
                self.registry.register(Box::new(counter.clone())).map_err(|_| MetricRejection::Collision)?;
                Series::Counter { counter, unit }
            }
        };
        self.dynamic.insert(esper_name.to_owned(), Dynamic { series, attribute_labels, label_sets: BTreeSet::new() });
        Ok(())
    }

    /// The distribution of a seconds gauge `name` (`…_seconds`), as
    /// `…_distribution_seconds` (the unit stays last; `_histogram` in a name is linted).
    fn histogram(&self, esper_name: &str, name: &str, label_names: &[&str]) -> Result<HistogramVec, MetricRejection> {
        let base = name.strip_suffix("_seconds").ok_or(MetricRejection::Unnamable)?;
        let opts = HistogramOpts::new(format!("{base}_distribution_seconds"), format!("Distribution of {esper_name}"))
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec());
        let histogram = HistogramVec::new(opts, label_names).map_err(|_| MetricRejection::Unnamable)?;
        self.registry.register(Box::new(histogram.clone())).map_err(|_| MetricRejection::Collision)?;
        Ok(histogram)
    }

    /// Mirrors a running total of Nissa's own (its Oona consumer's counters) into
    /// `esper_nissa_bus_events_total{event}`.
    pub fn mirror_bus_counter(&self, event: &str, total: u64) {
        let counter = self.bus.with_label_values(&[event]);
        let delta = total.saturating_sub(counter.get());
        if delta > 0 {
            counter.inc_by(delta);
        }
    }

    /// Adds one Simic reward to the counter of its sign.
    pub fn add_simic_reward(&self, reward: f64) {
        let (sign, magnitude) = if reward < 0.0 { ("negative", -reward) } else { ("positive", reward) };
        let counter: Counter = self.simic_reward.with_label_values(&[sign]);
        counter.inc_by(magnitude);
    }

    /// Sets `esper_alert_active{alert, severity}`.
    pub fn set_alert(&self, alert: &str, severity: &str, active: bool) {
        let gauge: Gauge = self.alert_active.with_label_values(&[alert, severity]);
        gauge.set(if active { 1.0 } else { 0.0 });
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        TextEncoder::new().encode_to_string(&families).unwrap_or_else(|error| {
            tracing::error!(%error, "nissa: encoding /metrics failed");
            String::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: &BTreeMap<String, String> = &BTreeMap::new();

    #[test]
    fn gauges_scale_counters_follow_running_totals_and_histograms_bucket() {
        let mut exporter = Exporter::new(16, 4);
        exporter.observe("tolaria.training.latency_ms", "tolaria", NONE, 412.0).expect("exported");
        for total in [3.0, 5.0, 2.0] {
            exporter.observe("tolaria.timeout.tamiyo_total", "tolaria", NONE, total).expect("exported");
        }
        let text = exporter.render();
        assert!(text.contains("esper_tolaria_training_latency_seconds{source=\"tolaria\"} 0.412"), "{text}");
        assert!(
            text.contains("esper_tolaria_timeout_tamiyo_total{source=\"tolaria\"} 7"),
            "3, +2, then a reset to 2: {text}"
        );
        assert!(
            text.contains(
                "esper_tolaria_training_latency_distribution_seconds_bucket{source=\"tolaria\",le=\"0.5\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "esper_tolaria_training_latency_distribution_seconds_bucket{source=\"tolaria\",le=\"0.35\"} 0"
            ),
            "{text}"
        );
    }

    #[test]
    fn bounds_and_refusals_are_counted() {
        let mut exporter = Exporter::new(2, 1);
        assert_eq!(exporter.observe("a.b", "x", NONE, f64::NAN), Err(MetricRejection::NonFinite));
        assert_eq!(exporter.observe("ms", "x", NONE, 1.0), Err(MetricRejection::Unnamable));
        exporter.observe("a.one", "x", NONE, 1.0).expect("first name");
        assert_eq!(exporter.observe("telemetry.packets_total", "x", NONE, 1.0), Err(MetricRejection::Collision));
        exporter.observe("a.two", "x", NONE, 1.0).expect("second name");
        assert_eq!(exporter.observe("a.three", "x", NONE, 1.0), Err(MetricRejection::TooManyNames));
        assert_eq!((exporter.source_label("s1"), exporter.source_label("s2")), ("s1".to_owned(), "other".to_owned()));
        let text = exporter.render();
        for reason in ["non_finite", "unnamable", "collision", "too_many_names"] {
            assert!(text.contains(&format!("esper_ingest_rejected_metrics_total{{reason=\"{reason}\"}} 1")), "{text}");
        }
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn allow_listed_attributes_become_labels_one_series_each_with_counter_deltas() {
        let mut exporter = Exporter::new(16, 4);
        for (status, total) in [("ok", 5.0), ("timeout", 2.0), ("error", 1.0), ("ok", 7.0)] {
            let attributes = with(&[("status", status), ("request_id", "r-123")]);
            exporter.observe("kasmina.prefetch.requests_total", "kasmina", &attributes, total).expect("exported");
        }
        let text = exporter.render();
        let series: Vec<&str> =
            text.lines().filter(|line| line.starts_with("esper_kasmina_prefetch_requests_total{")).collect();
        assert_eq!(
            series,
            [
                "esper_kasmina_prefetch_requests_total{source=\"kasmina\",status=\"error\"} 1",
                "esper_kasmina_prefetch_requests_total{source=\"kasmina\",status=\"ok\"} 7",
                "esper_kasmina_prefetch_requests_total{source=\"kasmina\",status=\"timeout\"} 2",
            ],
            "one series per status, running totals per series, request_id not a label: {text}"
        );
    }

    #[test]
    fn past_the_series_cap_points_are_counted_and_dropped() {
        let mut exporter = Exporter::new(16, 4);
        for seed in 0..=MAX_SERIES_PER_METRIC {
            let outcome =
                exporter.observe("kasmina.seed.alpha", "kasmina", &with(&[("seed", &format!("s{seed}"))]), 0.5);
            assert_eq!(outcome.is_err(), seed == MAX_SERIES_PER_METRIC, "seed {seed}");
        }
        let text = exporter.render();
        assert!(text.contains("esper_ingest_rejected_metrics_total{reason=\"too_many_series\"} 1"), "{text}");
        assert_eq!(
            text.lines().filter(|line| line.starts_with("esper_kasmina_seed_alpha{")).count(),
            MAX_SERIES_PER_METRIC
        );
        exporter.observe("kasmina.seed.alpha", "kasmina", &with(&[("seed", "s0")]), 0.75).expect("a known series");
    }
}
