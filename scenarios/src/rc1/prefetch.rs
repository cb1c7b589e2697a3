//! The RC1 kasmina-prefetch scenario: Kasmina's prefetch burst
//! (`crate::sim::kasmina_prefetch`) at RC1's harness defaults, as a metrics file.

use std::collections::BTreeMap;

use esper_core::kasmina::telemetry;

use super::metrics::{LatencySummary, SCHEMA, ScenarioMetrics, Timing};
use super::{HarnessConfig, Profile, ScenarioRun};
use crate::real::real_profile::wall_clock_ms;
use crate::sim::control_loop::hosts::SIM_EPOCH_MS;
use crate::sim::kasmina_prefetch::{self, BurstConfig, BurstReport};

/// RC1's harness defaults: 32 requests, 4 at a time, kernels ready after 40 ms, no
/// jitter, Esper-Lite's 1 s prefetch timeout.
pub const RC1_BURST: BurstConfig =
    BurstConfig { seed: 42, requests: 32, concurrency: 4, ready_latency_ms: 40, jitter_ms: 0, timeout_ms: 1_000 };

/// Runs the burst in `config`'s profile: its metrics file, and the coordinator's
/// counters as Kasmina's telemetry packets (stamped at the burst's end).
pub fn run(config: &HarnessConfig) -> Result<ScenarioRun, String> {
    let burst = BurstConfig { seed: config.seed, ..config.prefetch };
    let (report, started_ms) = match config.profile {
        Profile::Sim => (kasmina_prefetch::run_sim(&burst), SIM_EPOCH_MS),
        Profile::Real => (kasmina_prefetch::run_real(&burst, &config.redis, config.real_key()?), wall_clock_ms()),
    };
    let report = report.map_err(|error| error.to_string())?;
    let ended_ms = started_ms + report.elapsed_ms as u64;
    let telemetry = telemetry::packets("kasmina-prefetch", report.prefetch.metrics(), Vec::new(), ended_ms);
    Ok(ScenarioRun { metrics: metrics(config, &report), telemetry })
}

fn metrics(config: &HarnessConfig, report: &BurstReport) -> ScenarioMetrics {
    let burst = &report.config;
    let parameters = BTreeMap::from([
        ("requests".to_owned(), burst.requests.to_string()),
        ("concurrency".to_owned(), burst.concurrency.to_string()),
        ("ready_latency_ms".to_owned(), burst.ready_latency_ms.to_string()),
        ("jitter_ms".to_owned(), burst.jitter_ms.to_string()),
        ("timeout_ms".to_owned(), burst.timeout_ms.to_string()),
    ]);
    let mut counters = BTreeMap::new();
    for point in report.prefetch.metrics() {
        let labels: Vec<String> = point.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let name = if labels.is_empty() { point.name } else { format!("{}{{{}}}", point.name, labels.join(",")) };
        counters.insert(name, point.value);
    }
    let kpis = LatencySummary::of_ms(report.latencies_ms.clone())
        .map(|summary| ("kasmina.prefetch.latency_ms".to_owned(), summary))
        .into_iter()
        .collect();
    let results = BTreeMap::from([
        ("requests_ok".to_owned(), report.counters.ok as f64),
        ("modelled_mean_ms".to_owned(), report.modelled_mean_ms),
        ("elapsed_ms".to_owned(), report.elapsed_ms),
    ]);
    ScenarioMetrics {
        schema: SCHEMA.to_owned(),
        scenario: super::Rc1Scenario::KasminaPrefetch.slug().to_owned(),
        profile: config.profile.name().to_owned(),
        device: config.training.device.to_string(),
        seed: config.seed,
        epochs: 0,
        timing: if config.profile == Profile::Sim { Timing::Modelled } else { Timing::Wall },
        parameters,
        kpis,
        counters,
        events: BTreeMap::new(),
        results,
        trace_hash: report.trace_hash.clone(),
    }
}
