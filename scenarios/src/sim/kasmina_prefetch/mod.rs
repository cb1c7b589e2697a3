//! The Kasmina prefetch burst: many kernel requests, a few at a time, from
//! Kasmina's prefetch coordinator to Urza over Oona and Redis.
//!
//! The same burst runs in two profiles. [`run_sim`] builds one seeded world
//! (hosts `urza`, `redis`, `kasmina`) and reports virtual-time latencies and the
//! trace hash — identical for a seed on every run. [`run_real`] runs the same
//! coordinator and the same Urza on a tokio runtime against the embedded Redis
//! (or a given `redis://` URL) and reports wall-clock latencies. The scenario
//! `kasmina-prefetch` ([`KasminaPrefetchScenario`]) is the sim burst with its
//! acceptance check; [`KasminaPrefetchScenario::urza_partitioned`] is the drill
//! in which Urza never hears a request. `kasmina-prefetch-outage`
//! ([`KasminaPrefetchOutageScenario`]) drives the coordinator's unhappy paths:
//! timeouts, errors, late answers and cache hits around a drawn Urza outage.

mod outage;
mod real;
mod recount;
mod sim;
mod unreadable;

use std::time::Duration;

use esper_core::karn::{Blueprint, Catalog};
use esper_core::kasmina::{
    KernelSource, PrefetchConfig, PrefetchCoordinator, PrefetchCounters, PrefetchOutcome, PrefetchStatus,
};
use esper_core::net::Connector;
use esper_core::oona::{OonaError, StreamConfig};
use esper_core::tezzeret::{CompileJobConfig, DeviceCompiler, Forge};
use esper_core::tolaria::device::DeviceKind;
use esper_core::urza::{Library, UrzaConfig};
use esper_sim::{SimDisk, SimDiskConfig, Violation};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::rc1::metrics::LatencySummary;

pub use outage::KasminaPrefetchOutageScenario;
pub use real::run_real;
pub use sim::{KasminaPrefetchScenario, run_sim};

/// The burst's shape. Defaults: the bench (300 requests, concurrency 6,
/// Urza ready 40 ± 8 ms, 1 s timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BurstConfig {
    /// The sim world's seed; in the real profile it seeds Urza's latency draws.
    pub seed: u64,
    pub requests: usize,
    pub concurrency: usize,
    pub ready_latency_ms: u64,
    pub jitter_ms: u64,
    pub timeout_ms: u64,
}

impl Default for BurstConfig {
    fn default() -> Self {
        Self { seed: 0, requests: 300, concurrency: 6, ready_latency_ms: 40, jitter_ms: 8, timeout_ms: 1_000 }
    }
}

impl BurstConfig {
    fn prefetch(&self, requester: &str) -> PrefetchConfig {
        PrefetchConfig {
            requester: requester.to_owned(),
            training_run_id: "kasmina-prefetch".to_owned(),
            timeout: Duration::from_millis(self.timeout_ms),
            max_inflight: self.concurrency,
            ..PrefetchConfig::default()
        }
    }

    fn urza(&self) -> UrzaConfig {
        UrzaConfig {
            ready_latency: Duration::from_millis(self.ready_latency_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            ..UrzaConfig::default()
        }
    }

    /// Distinct blueprints, so every request goes to Urza (none is a cache hit).
    fn blueprints(&self) -> Vec<String> {
        (0..self.requests).map(|n| format!("bench-{n:04}")).collect()
    }

    /// A catalog of the bench blueprints: SAFE, risk 0, Karn's smallest module.
    fn catalog(&self) -> Result<Catalog, BurstError> {
        let template = Catalog::default_catalog().get("BP001").cloned().ok_or_else(|| {
            BurstError::Config("Karn's catalog has no BP001 to model the bench blueprints on".to_owned())
        })?;
        let blueprints = self
            .blueprints()
            .into_iter()
            .map(|blueprint_id| Blueprint { blueprint_id, name: "bench".to_owned(), ..template.clone() })
            .collect();
        Catalog::new("kasmina-prefetch-bench".to_owned(), blueprints).map_err(|e| BurstError::Config(e.to_string()))
    }
}

/// Urza's library for a burst: Tezzeret forges every bench blueprint into an
/// in-memory disk (`SimDisk` without fsync latency, so stocking takes no time in
/// either profile; the bench measures the bus, not the disk). Kasmina's answers
/// then carry real artifact digests.
async fn bench_library(config: &BurstConfig, disk_rng: ChaCha8Rng) -> Result<Library<SimDisk>, BurstError> {
    let disk_config = SimDiskConfig { fsync_latency: Duration::ZERO, ..SimDiskConfig::default() };
    let disk = SimDisk::new(disk_config, disk_rng);
    let job = CompileJobConfig::default();
    let (library, _) =
        Library::open(disk.clone(), &job.artifact_dir).await.map_err(|e| BurstError::Sim(e.to_string()))?;
    let compiler = DeviceCompiler::new(DeviceKind::Synthetic, config.seed);
    let report = Forge::new(disk, library.clone(), job, compiler)
        .run(&config.catalog()?)
        .await
        .map_err(|e| BurstError::Sim(e.to_string()))?;
    if !report.pending.is_empty() {
        return Err(BurstError::Sim(format!("Tezzeret left {} bench kernels unbuilt", report.pending.len())));
    }
    Ok(library)
}

/// How the requests ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BurstCounters {
    pub ok: u64,
    pub timeout: u64,
    pub error: u64,
    /// Requests served by the fallback kernel.
    pub fallback: u64,
}

/// What a burst measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BurstReport {
    /// `sim` or `real`.
    pub profile: &'static str,
    pub config: BurstConfig,
    /// Per request, in issue order: issue to answer (or deadline), in ms.
    pub latencies_ms: Vec<f64>,
    pub mean_ms: f64,
    /// The mean of the latencies Urza drew for the answered requests (its
    /// reported prewarm time): the model this run should match.
    pub modelled_mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub counters: BurstCounters,
    /// The coordinator's own counters (its `kasmina.prefetch.*` metrics).
    pub prefetch: PrefetchCounters,
    /// The sim run's trace hash (`None` in the real profile).
    pub trace_hash: Option<String>,
    /// Sim time (sim) or wall time (real) the burst took, in ms.
    pub elapsed_ms: f64,
}

impl BurstReport {
    fn new(
        profile: &'static str,
        config: BurstConfig,
        outcomes: &[PrefetchOutcome],
        prefetch: PrefetchCounters,
    ) -> Self {
        let latencies_ms: Vec<f64> = outcomes.iter().map(|o| o.latency.as_secs_f64() * 1_000.0).collect();
        let (mean_ms, p50_ms, p95_ms, max_ms) =
            LatencySummary::of_ms(latencies_ms.clone()).map_or((0.0, 0.0, 0.0, 0.0), |s| (s.mean, s.p50, s.p95, s.max));
        let count = |status| outcomes.iter().filter(|o| o.status == status).count() as u64;
        let modelled: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.kernel.source == KernelSource::Fetched)
            .map(|o| f64::from(o.kernel.prewarm_ms))
            .collect();
        Self {
            profile,
            config,
            mean_ms,
            modelled_mean_ms: mean(&modelled),
            p50_ms,
            p95_ms,
            max_ms,
            latencies_ms,
            counters: BurstCounters {
                ok: count(PrefetchStatus::Ok),
                timeout: count(PrefetchStatus::Timeout),
                error: count(PrefetchStatus::Error),
                fallback: prefetch.fallback_used,
            },
            prefetch,
            trace_hash: None,
            elapsed_ms: 0.0,
        }
    }

    /// Whether the burst matches Urza's model: every request answered, the mean
    /// within 1 ms of the mean of the latencies Urza drew (so the bus and the
    /// coordinator add under a millisecond), and p95 under the top of the jitter
    /// band plus 5.5 ms (53.5 ms for 40 ± 8). The issue's literal "mean within
    /// 1 ms of 40 ms" also holds the sampling error of 300 draws (σ ≈ 0.28 ms);
    /// the tests assert it for their seeds.
    pub fn check_acceptance(&self) -> Result<(), String> {
        let answered = self.counters.ok == self.config.requests as u64;
        let p95_bound = (self.config.ready_latency_ms + self.config.jitter_ms) as f64 + 5.5;
        if !answered || (self.mean_ms - self.modelled_mean_ms).abs() > 1.0 || self.p95_ms >= p95_bound {
            return Err(format!(
                "prefetch burst off the model (mean within 1 ms of the drawn {:.2} ms, p95 < {p95_bound} ms, all ok): {self}",
                self.modelled_mean_ms
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for BurstReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        write!(
            f,
            "kasmina-prefetch {profile} seed={seed} requests={requests} concurrency={concurrency} \
             ready={ready}±{jitter} ms: mean {mean:.2} ms (model {modelled:.2}), p50 {p50:.2} ms, p95 {p95:.2} ms, max {max:.2} ms; \
             ok {ok}, timeout {timeout}, error {error}, fallback {fallback}; took {elapsed:.0} ms",
            profile = self.profile,
            seed = c.seed,
            requests = c.requests,
            concurrency = c.concurrency,
            ready = c.ready_latency_ms,
            jitter = c.jitter_ms,
            mean = self.mean_ms,
            modelled = self.modelled_mean_ms,
            p50 = self.p50_ms,
            p95 = self.p95_ms,
            max = self.max_ms,
            ok = self.counters.ok,
            timeout = self.counters.timeout,
            error = self.counters.error,
            fallback = self.counters.fallback,
            elapsed = self.elapsed_ms,
        )?;
        if let Some(hash) = &self.trace_hash {
            write!(f, "; trace {hash}")?;
        }
        Ok(())
    }
}

fn mean(samples: &[f64]) -> f64 {
    if samples.is_empty() { 0.0 } else { samples.iter().sum::<f64>() / samples.len() as f64 }
}

/// Why a burst could not run.
#[derive(Debug, thiserror::Error)]
pub enum BurstError {
    #[error("bad burst configuration: {0}")]
    Config(String),
    #[error("the embedded Redis did not start: {0}")]
    EmbeddedRedis(#[source] std::io::Error),
    #[error("no tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("Kasmina could not prepare the reply stream: {0}")]
    Bus(#[from] OonaError),
    #[error("the simulated burst failed: {0}")]
    Sim(String),
    #[error("Kasmina's prefetch metrics disagree with its outcomes: {0}")]
    Telemetry(Violation),
}

impl BurstConfig {
    /// Refuses shapes that cannot run.
    pub fn validate(&self) -> Result<(), BurstError> {
        if self.requests == 0 || self.concurrency == 0 {
            return Err(BurstError::Config("requests and concurrency must be at least 1".to_owned()));
        }
        if self.jitter_ms > self.ready_latency_ms {
            return Err(BurstError::Config(format!(
                "jitter {} ms exceeds the ready latency {} ms",
                self.jitter_ms, self.ready_latency_ms
            )));
        }
        if self.timeout_ms == 0 {
            return Err(BurstError::Config("timeout_ms must be at least 1".to_owned()));
        }
        Ok(())
    }
}

/// Oona settings for one burst participant: its consumer group, short blocking
/// reads, few reconnect attempts (a partition shows up quickly), and the kernel
/// streams under `suffix` (the real profile keeps runs apart on a shared Redis).
fn stream_config(group: &str, suffix: &str) -> StreamConfig {
    let defaults = StreamConfig::default();
    StreamConfig {
        group: group.to_owned(),
        consumer: group.to_owned(),
        kernel_request_stream: format!("{}{suffix}", defaults.kernel_request_stream),
        kernel_reply_stream: format!("{}{suffix}", defaults.kernel_reply_stream),
        read_count: 16,
        block: Duration::from_millis(100),
        // Handlers here never fail, so only a crashed peer leaves entries to reclaim.
        claim_interval: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        reconnect_cap: Duration::from_millis(500),
        reconnect_attempts: 3,
        ..defaults
    }
}

/// Kasmina's side of a burst: prepare, fetch every blueprint, report.
async fn burst<C: Connector, R: RngCore>(
    mut coordinator: PrefetchCoordinator<C, R>,
    config: BurstConfig,
    profile: &'static str,
) -> Result<BurstReport, BurstError> {
    coordinator.prepare().await?;
    let started = tokio::time::Instant::now();
    let outcomes = coordinator.prefetch(&config.blueprints()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
    let counters = coordinator.counters();
    recount::check(&outcomes, &counters).map_err(BurstError::Telemetry)?;
    Ok(BurstReport { elapsed_ms, ..BurstReport::new(profile, config, &outcomes, counters) })
}
