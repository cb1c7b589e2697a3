//! SLO burn rates from `slo.<name>_actual` / `slo.<name>_objective` pairs.
//!
//! A telemetry packet carrying both metrics of a pair is one sample of SLO
//! `<name>`; it is a violation when the actual exceeds the objective (Esper-Lite's
//! rule). The burn rate over a window is violations / samples among the samples
//! ingested within that window before now — Esper-Lite's definition, where
//! a burn rate of 0.4 or more counts as breached. Windows are configurable
//! (`NISSA_SLO_WINDOWS`). Samples are kept exactly, bounded per SLO (oldest out,
//! counted) and pruned past the longest window; at most `max_slos` SLOs are tracked.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::leyline::TelemetryPacket;

const PREFIX: &str = "slo.";
const ACTUAL: &str = "_actual";
const OBJECTIVE: &str = "_objective";

/// Burn rate at or above which an SLO is reported breached.
pub const BREACH_BURN_RATE: f64 = 0.4;

/// One SLO sample found in a packet.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSample {
    pub name: String,
    pub actual: f64,
    pub objective: f64,
}

impl SloSample {
    /// Whether the actual exceeded the objective.
    pub fn violated(&self) -> bool {
        self.actual > self.objective
    }
}

/// The complete, finite `slo.*` pairs in `packet`, by name.
pub fn samples(packet: &TelemetryPacket) -> Vec<SloSample> {
    let mut actuals = BTreeMap::new();
    let mut objectives = BTreeMap::new();
    for metric in packet.metrics.iter().filter(|metric| metric.value.is_finite()) {
        let Some(rest) = metric.name.strip_prefix(PREFIX) else { continue };
        if let Some(name) = rest.strip_suffix(ACTUAL).filter(|name| !name.is_empty()) {
            actuals.entry(name).or_insert(metric.value);
        } else if let Some(name) = rest.strip_suffix(OBJECTIVE).filter(|name| !name.is_empty()) {
            objectives.entry(name).or_insert(metric.value);
        }
    }
    actuals
        .into_iter()
        .filter_map(|(name, actual)| {
            objectives.get(name).map(|&objective| SloSample { name: name.to_owned(), actual, objective })
        })
        .collect()
}

/// Burn over one window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct WindowBurn {
    pub total: u64,
    pub violations: u64,
    /// violations / total; 0 when there were no samples.
    pub burn_rate: f64,
}

/// One SLO's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SloStatus {
    /// Samples since Nissa started.
    pub total: u64,
    /// Violations since Nissa started.
    pub violations: u64,
    /// Per window, by its label (`5m`, `1h`…).
    pub windows: BTreeMap<String, WindowBurn>,
    /// Burn rate over the longest window (Esper-Lite's single figure).
    pub burn_rate: f64,
    /// Whether `burn_rate` ≥ 0.4.
    pub breached: bool,
    /// Samples dropped because the per-SLO bound was reached.
    pub evicted: u64,
}

#[derive(Debug, Clone, Default)]
struct Series {
    samples: VecDeque<(u64, bool)>,
    total: u64,
    violations: u64,
    evicted: u64,
}

/// Every SLO's samples.
#[derive(Debug, Clone)]
pub struct SloTracker {
    windows: Vec<Duration>,
    max_samples: usize,
    max_slos: usize,
    series: BTreeMap<String, Series>,
}

impl SloTracker {
    /// A tracker over `windows` (at least one; sorted here), keeping at most
    /// `max_samples` samples for each of at most `max_slos` SLOs.
    pub fn new(mut windows: Vec<Duration>, max_samples: usize, max_slos: usize) -> Self {
        windows.sort();
        windows.dedup();
        assert!(!windows.is_empty(), "an SLO tracker needs a window");
        Self { windows, max_samples: max_samples.max(1), max_slos, series: BTreeMap::new() }
    }

    /// The windows, shortest first.
    pub fn windows(&self) -> &[Duration] {
        &self.windows
    }

    /// Records `sample` at `now_ms`; false when the SLO is new and `max_slos` are tracked.
    pub fn record(&mut self, sample: &SloSample, now_ms: u64) -> bool {
        if !self.series.contains_key(&sample.name) && self.series.len() >= self.max_slos {
            return false;
        }
        let longest = self.longest_ms();
        let series = self.series.entry(sample.name.clone()).or_default();
        let violated = sample.violated();
        series.total += 1;
        series.violations += u64::from(violated);
        series.samples.push_back((now_ms, violated));
        while series.samples.front().is_some_and(|(at, _)| now_ms.saturating_sub(*at) > longest) {
            series.samples.pop_front();
        }
        while series.samples.len() > self.max_samples {
            series.samples.pop_front();
            series.evicted += 1;
        }
        true
    }

    fn longest_ms(&self) -> u64 {
        self.windows.last().map_or(0, |window| u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
    }

    /// Every SLO's figures at `now_ms`.
    pub fn status(&self, now_ms: u64) -> BTreeMap<String, SloStatus> {
        self.series.iter().map(|(name, series)| (name.clone(), self.status_of(series, now_ms))).collect()
    }

    fn status_of(&self, series: &Series, now_ms: u64) -> SloStatus {
        let windows: BTreeMap<String, WindowBurn> = self
            .windows
            .iter()
            .map(|window| {
                let span = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                let inside = series.samples.iter().filter(|(at, _)| now_ms.saturating_sub(*at) <= span);
                let (total, violations) = inside.fold((0_u64, 0_u64), |(t, v), (_, bad)| (t + 1, v + u64::from(*bad)));
                let burn_rate = if total == 0 { 0.0 } else { violations as f64 / total as f64 };
                (window_label(*window), WindowBurn { total, violations, burn_rate })
            })
            .collect();
        let burn_rate =
            self.windows.last().and_then(|longest| windows.get(&window_label(*longest))).map_or(0.0, |w| w.burn_rate);
        SloStatus {
            total: series.total,
            violations: series.violations,
            windows,
            burn_rate,
            breached: burn_rate >= BREACH_BURN_RATE,
            evicted: series.evicted,
        }
    }
}

/// `90s`, `5m`, `1h`, `30d`: the largest unit that divides the window exactly.
pub fn window_label(window: Duration) -> String {
    let secs = window.as_secs();
    if window.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", window.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Parses a window label as written by [`window_label`] (`ms`, `s`, `m`, `h`, `d`).
pub fn parse_window(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        "h" => Duration::from_secs(number.checked_mul(3_600)?),
        "d" => Duration::from_secs(number.checked_mul(86_400)?),
        _ => return None,
    };
    (!duration.is_zero()).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leyline::MetricPoint;

    fn sample(actual: f64) -> SloSample {
        SloSample { name: "latency".to_owned(), actual, objective: 100.0 }
    }

    #[test]
    fn burn_rates_by_window_match_a_hand_count() {
        let mut tracker = SloTracker::new(vec![Duration::from_secs(3_600), Duration::from_secs(300)], 100, 8);
        // t = 0: four samples, one violation; t = 40 min: two samples, both violations;
        // t = 58 min: four samples, one violation. At t = 60 min the 5-minute window
        // holds the last four (1/4), the hour all ten (4/10).
        let minutes = |m: u64| m * 60_000;
        for (at, actual) in [
            (0, 150.0),
            (0, 90.0),
            (0, 80.0),
            (0, 100.0),
            (40, 101.0),
            (40, 300.0),
            (58, 1.0),
            (58, 2.0),
            (58, 200.0),
            (58, 3.0),
        ] {
            assert!(tracker.record(&sample(actual), minutes(at)));
        }
        let status = &tracker.status(minutes(60))["latency"];
        assert_eq!((status.total, status.violations), (10, 4));
        assert_eq!(status.windows["5m"], WindowBurn { total: 4, violations: 1, burn_rate: 0.25 });
        assert_eq!(status.windows["1h"], WindowBurn { total: 10, violations: 4, burn_rate: 0.4 });
        assert!(status.breached, "0.4 over the longest window is a breach");
    }

    #[test]
    fn pairs_are_found_and_bounds_hold() {
        let packet = TelemetryPacket {
            metrics: vec![
                MetricPoint::new("slo.a_actual", 2.0, ""),
                MetricPoint::new("slo.a_objective", 1.0, ""),
                MetricPoint::new("slo.b_actual", 2.0, ""),
                MetricPoint::new("slo._objective", 1.0, ""),
                MetricPoint::new("slo.c_objective", f64::NAN, ""),
                MetricPoint::new("slo.c_actual", 1.0, ""),
            ],
            ..TelemetryPacket::default()
        };
        assert_eq!(samples(&packet), vec![SloSample { name: "a".into(), actual: 2.0, objective: 1.0 }]);
        let mut tracker = SloTracker::new(vec![Duration::from_secs(60)], 2, 1);
        for at in 0..3 {
            tracker.record(&sample(1.0), at);
        }
        assert!(!tracker.record(&SloSample { name: "other".into(), actual: 1.0, objective: 1.0 }, 3));
        let status = &tracker.status(3)["latency"];
        assert_eq!((status.total, status.evicted, status.windows["1m"].total), (3, 1, 2));
    }

    #[test]
    fn window_labels_round_trip() {
        for label in ["250ms", "90s", "5m", "1h", "30d"] {
            let window = parse_window(label).expect(label);
            assert_eq!(window_label(window), label);
        }
        for bad in ["", "5", "m", "0m", "5y", "-1h"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }
}
