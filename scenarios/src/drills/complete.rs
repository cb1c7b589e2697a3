//! The `telemetry-complete` invariant: every counter a subsystem moved during a run
//! is visible in Nissa's exporter by the end of it.
//!
//! After the run, the telemetry Redis holds (read as [`super::wire`] reads it, in
//! the order Redis accepted it) is fed to a real [`Nissa`] — the ingest `esper up`
//! and `esper nissa` run — and its `/metrics` text is read back as Prometheus
//! would scrape it. Each counter the producer holds at the end with a value above
//! zero must show exactly that value (in the base unit) under its Prometheus name
//! and the producer's `source` label. The one allowed shortfall is a counted,
//! documented drop: the producer's bus refused telemetry (`oona.publish_dropped`,
//! `oona.emergency_rate_dropped`), which may have been the packet with the last
//! value. Anything else — a builder that lost a metric splitting a packet, a
//! counter never put in a packet, a label that hid a series — fails the run.

use esper_core::clock::UnixClock;
use esper_core::leyline::TelemetryPacket;
use esper_core::nissa::naming::prometheus_name;
use esper_core::nissa::{Nissa, NissaConfig};
use esper_core::oona::OonaMetrics;
use esper_sim::{Invariant, Violation};

/// What one producer counted, as it stands at the end of the run.
#[derive(Debug, Clone)]
pub struct Produced<'a> {
    /// Its `source_subsystem`.
    pub source: &'a str,
    /// Every counter with its metric name (`named()` of its counters struct).
    pub counters: &'a [(&'static str, u64)],
    /// Its telemetry bus's counters, for the drops it counted.
    pub bus: OonaMetrics,
}

/// Checks `produced` against Nissa fed `telemetry`; see the module docs.
pub fn check_complete(
    telemetry: &[TelemetryPacket],
    produced: &Produced<'_>,
    clock: UnixClock,
) -> Result<(), Violation> {
    let nissa = Nissa::new(NissaConfig::default(), clock).map_err(|error| {
        Invariant::TelemetryComplete.violated(format!("Nissa's default rules do not load: {error}"))
    })?;
    for packet in telemetry {
        nissa.ingest_telemetry(packet);
    }
    let scrape = nissa.render_metrics();
    let counted_drops = produced.bus.publish_dropped + produced.bus.emergency_rate_dropped;
    for &(name, value) in produced.counters.iter().filter(|(_, value)| *value > 0) {
        let Some(prom) = prometheus_name(name) else {
            return Err(Invariant::TelemetryComplete.violated(format!("counter {name} has no Prometheus name")));
        };
        let expected = prom.to_base(value as f64);
        let seen = scraped(&scrape, &prom.name, produced.source);
        if seen == Some(expected) || (counted_drops > 0 && seen.is_none_or(|seen| seen < expected)) {
            continue;
        }
        let seen = seen.map_or_else(|| "no series".to_owned(), |seen| seen.to_string());
        return Err(Invariant::TelemetryComplete.violated(format!(
            "{} counted {name} = {value}, but Nissa's /metrics shows {}{{source=\"{}\"}} = {seen} \
             ({counted_drops} telemetry drops counted on its bus)",
            produced.source, prom.name, produced.source
        )));
    }
    Ok(())
}

/// The value of `name{source="<source>"}` (whatever other labels it has) in a
/// Prometheus text exposition.
fn scraped(text: &str, name: &str, source: &str) -> Option<f64> {
    let source_label = format!("source=\"{source}\"");
    text.lines().find_map(|line| {
        let labels_and_value = line.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = labels_and_value.rsplit_once("} ")?;
        labels.split(',').any(|label| label == source_label).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use esper_core::leyline::MetricPoint;

    use super::*;

    const COUNTERS: [(&str, u64); 3] =
        [("tolaria.timeout.tamiyo_total", 3), ("tolaria.epochs.failed", 2), ("tolaria.hook.errors_total", 0)];

    fn packet(metrics: &[(&str, f64)]) -> TelemetryPacket {
        TelemetryPacket {
            source_subsystem: "tolaria".to_owned(),
            metrics: metrics.iter().map(|(name, value)| MetricPoint::new(*name, *value, "")).collect(),
            ..TelemetryPacket::default()
        }
    }

    fn produced(bus: OonaMetrics) -> Produced<'static> {
        Produced { source: "tolaria", counters: &COUNTERS, bus }
    }

    fn check(telemetry: &[TelemetryPacket], bus: OonaMetrics) -> Result<(), Violation> {
        check_complete(telemetry, &produced(bus), UnixClock::anchored_at(0))
    }

    #[test]
    fn counters_whose_last_values_reached_nissa_pass() {
        let telemetry = [
            packet(&[("tolaria.timeout.tamiyo_total", 1.0)]),
            packet(&[("tolaria.timeout.tamiyo_total", 3.0), ("tolaria.epochs.failed", 2.0)]),
        ];
        check(&telemetry, OonaMetrics::default()).expect("complete");
    }

    #[test]
    fn a_counter_missing_or_stale_in_nissa_fails_unless_a_drop_was_counted() {
        let stale = [packet(&[("tolaria.timeout.tamiyo_total", 1.0), ("tolaria.epochs.failed", 2.0)])];
        let violation = check(&stale, OonaMetrics::default()).expect_err("stale");
        assert_eq!(violation.invariant, Invariant::TelemetryComplete);
        assert!(violation.detail.contains("tolaria.timeout.tamiyo_total = 3"), "{violation}");
        let missing = [packet(&[("tolaria.timeout.tamiyo_total", 3.0)])];
        let violation = check(&missing, OonaMetrics::default()).expect_err("missing");
        assert!(violation.detail.contains("no series"), "{violation}");
        let dropped = OonaMetrics { emergency_rate_dropped: 1, ..OonaMetrics::default() };
        check(&stale, dropped).expect("a counted drop accounts for the shortfall");
    }

    #[test]
    fn the_source_label_must_match() {
        let mut other = packet(&[("tolaria.timeout.tamiyo_total", 3.0), ("tolaria.epochs.failed", 2.0)]);
        other.source_subsystem = "kasmina".to_owned();
        assert!(check(&[other], OonaMetrics::default()).is_err());
    }
}
