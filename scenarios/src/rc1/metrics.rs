//! `<scenario>_metrics.json`: what one RC1 scenario run measured.
//!
//! The schema is documented in `docs/rc1.md`; `SCHEMA` names its
//! version so the gate can refuse files it does not understand.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema tag written into every metrics file.
pub const SCHEMA: &str = "esper.rc1.metrics/v1";

/// How a run's latencies were obtained: modelled virtual time (sim) or the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// Virtual time from the sim's deterministic cost model.
    Modelled,
    /// Measured wall time.
    Wall,
}

impl Timing {
    /// As written in `summary.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Modelled => "modelled",
            Self::Wall => "wall",
        }
    }
}

/// Summary statistics of one latency KPI over a run's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub unit: String,
    pub samples: usize,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    /// Every sample, in the order taken (for the report's plot and for trend gates).
    pub values: Vec<f64>,
}

impl LatencySummary {
    /// The summary of `values` in milliseconds; `None` when there are none.
    pub fn of_ms(values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        Some(Self {
            unit: "ms".to_owned(),
            samples: values.len(),
            mean,
            p50: percentile(&sorted, 0.50),
            p95: percentile(&sorted, 0.95),
            max: sorted[sorted.len() - 1],
            values,
        })
    }

    /// A statistic by name (`mean`, `p50`, `p95`, `max`).
    pub fn statistic(&self, name: &str) -> Option<f64> {
        match name {
            "mean" => Some(self.mean),
            "p50" => Some(self.p50),
            "p95" => Some(self.p95),
            "max" => Some(self.max),
            _ => None,
        }
    }
}

/// The RC1 percentile: rank = p × (n − 1) over the sorted samples, interpolated
/// linearly between the two neighbours; 0 for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else { return 0.0 };
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let weight = rank - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * weight
}

/// One scenario's metrics file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioMetrics {
    pub schema: String,
    /// RC1 slug: `steady_train`, `rollback_deadline`, `tamiyo_timeout`, `kasmina_prefetch_burst`.
    pub scenario: String,
    /// `sim` or `real`.
    pub profile: String,
    pub device: String,
    pub seed: u64,
    pub epochs: u32,
    pub timing: Timing,
    /// The knobs the run used (batch size, timeout-every, requests, …).
    pub parameters: BTreeMap<String, String>,
    /// Latency KPIs by metric name (`tolaria.training.latency_ms`, …).
    pub kpis: BTreeMap<String, LatencySummary>,
    /// Counters by metric name, as the subsystems name them.
    pub counters: BTreeMap<String, f64>,
    /// Telemetry events seen, by name, with how often.
    pub events: BTreeMap<String, u64>,
    /// Other results: `loss_final`, `accuracy_final`, `halted`, `tamiyo_evaluations`.
    pub results: BTreeMap<String, f64>,
    /// The sim's trace hash (same seed, same commit ⇒ same hash); absent for real runs.
    pub trace_hash: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_between_neighbours_as_rc1_did() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&sorted, 0.5), 2.5);
        assert!((percentile(&sorted, 0.95) - 3.85).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.95), 0.0);
        let summary = LatencySummary::of_ms(vec![4.0, 1.0, 3.0, 2.0]).expect("samples");
        assert_eq!((summary.mean, summary.p50, summary.max, summary.samples), (2.5, 2.5, 4.0, 4));
        assert!(LatencySummary::of_ms(Vec::new()).is_none());
    }
}
