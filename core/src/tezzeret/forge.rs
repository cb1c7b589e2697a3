//! The forge loop: plan, then one job per pending blueprint, the WAL rewritten
//! after each. See the module docs of [`crate::tezzeret`].

use std::path::PathBuf;

use crate::karn::{Blueprint, Catalog};
use crate::leyline::counters::leyline_counters;
use crate::leyline::{
    MessagePriority, MetricPoint, TelemetryBuilder, TelemetryLevel, TelemetryPacket, TelemetryTooLarge, Timestamp,
};
use crate::storage::Storage;
use crate::urza::{KernelArtifact, Library, UrzaError};

use super::compile::{CompileError, Compiler};
use super::wal::{self, FORGE_WAL_FILE, ForgeWalError};

/// Consecutive failed jobs that open the breaker (Esper-Lite's rule).
pub const BREAKER_FAILURES: u32 = 3;

/// Where the forge works and how hard it tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileJobConfig {
    /// Urza's library root; `forge_wal.json` lives here too.
    pub artifact_dir: PathBuf,
    /// Attempts after the first for one blueprint (Esper-Lite: 1).
    pub max_retries: u32,
}

impl Default for CompileJobConfig {
    fn default() -> Self {
        Self { artifact_dir: PathBuf::from("var/urza"), max_retries: 1 }
    }
}

impl CompileJobConfig {
    /// The WAL's path.
    pub fn wal_path(&self) -> PathBuf {
        self.artifact_dir.join(FORGE_WAL_FILE)
    }
}

leyline_counters! {
    /// What a forge has done since it was built (one process life).
    #[derive(serde::Serialize)]
    pub struct ForgeCounters {
        /// Blueprints compiled and published.
        compiled_total => "tezzeret.compile.compiled_total",
        /// Compile attempts after a failed one.
        retries_total => "tezzeret.compile.retries_total",
        /// Jobs that failed after every retry.
        failed_total => "tezzeret.compile.failed_total",
        /// Jobs skipped because the library already held the kernel.
        skipped_built_total => "tezzeret.compile.skipped_built_total",
        /// Jobs naming a blueprint the catalog does not have (dropped from the WAL).
        skipped_unknown_total => "tezzeret.compile.skipped_unknown_total",
        /// Jobs skipped because the breaker was open (left pending).
        breaker_open_skip_total => "tezzeret.compile.breaker_open_skip_total",
    }
}

/// One forge pass.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForgeReport {
    /// Whether the pass resumed a WAL left by an earlier one.
    pub resumed: bool,
    /// Blueprints compiled in this pass, in order.
    pub compiled: Vec<String>,
    /// Retries in this pass (`tezzeret.compile.retry_count`, what the alert watches).
    pub retry_count: u64,
    /// Still pending after the pass (failed or skipped by the breaker); the WAL
    /// holds exactly these.
    pub pending: Vec<String>,
    /// The forge's counters after the pass.
    pub counters: ForgeCounters,
}

/// Why a forge pass stopped. Compile failures do not stop it (they are counted and
/// left pending); only the disk does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TezzeretError {
    #[error(transparent)]
    Wal(#[from] ForgeWalError),
    #[error(transparent)]
    Library(#[from] UrzaError),
}

/// The forge: a compiler, Urza's library and the WAL. See the module docs.
#[derive(Debug)]
pub struct Forge<S, C> {
    storage: S,
    library: Library<S>,
    config: CompileJobConfig,
    compiler: C,
    counters: ForgeCounters,
}

/// How one job ended.
enum JobOutcome {
    /// Compiled and published.
    Compiled,
    /// Nothing to do (already built, or not in the catalog).
    Skipped,
    /// Every attempt failed; the blueprint stays pending.
    Failed,
    /// Not attempted: the breaker is open; the blueprint stays pending.
    BreakerOpen,
}

impl<S: Storage, C: Compiler> Forge<S, C> {
    /// A forge publishing to `library` (opened under `config.artifact_dir`).
    pub fn new(storage: S, library: Library<S>, config: CompileJobConfig, compiler: C) -> Self {
        assert_eq!(library.root(), config.artifact_dir, "the forge publishes into its artifact directory's library");
        Self { storage, library, config, compiler, counters: ForgeCounters::default() }
    }

    /// One pass over `catalog`: resume the WAL or plan every blueprint the library
    /// lacks, then run the jobs. Returns what was done; the WAL is absent at the end
    /// if and only if nothing is left pending.
    pub async fn run(&mut self, catalog: &Catalog) -> Result<ForgeReport, TezzeretError> {
        let path = self.config.wal_path();
        let (resumed, mut pending) = match wal::load(&self.storage, &path).await? {
            Some(pending) => (true, pending),
            None => (
                false,
                catalog.iter().map(|b| b.blueprint_id.clone()).filter(|id| !self.library.contains(id)).collect(),
            ),
        };
        tracing::info!(resumed, pending = pending.len(), "tezzeret: forge pass");
        if !resumed {
            wal::store(&self.storage, &path, &pending).await?;
        }
        let retries_before = self.counters.retries_total;
        let mut compiled = Vec::new();
        let mut consecutive_failures = 0;
        let mut index = 0;
        while let Some(id) = pending.get(index).cloned() {
            let outcome = if consecutive_failures >= BREAKER_FAILURES {
                JobOutcome::BreakerOpen
            } else {
                self.job(catalog.get(&id), &id).await?
            };
            match outcome {
                JobOutcome::Compiled | JobOutcome::Skipped => {
                    if matches!(outcome, JobOutcome::Compiled) {
                        compiled.push(id);
                    }
                    consecutive_failures = 0;
                    pending.remove(index);
                    wal::store(&self.storage, &path, &pending).await?;
                }
                JobOutcome::Failed => {
                    consecutive_failures += 1;
                    index += 1;
                }
                JobOutcome::BreakerOpen => {
                    self.counters.breaker_open_skip_total += 1;
                    tracing::warn!(blueprint = %id, "tezzeret: breaker_open_skip");
                    index += 1;
                }
            }
        }
        Ok(ForgeReport {
            resumed,
            compiled,
            retry_count: self.counters.retries_total - retries_before,
            pending,
            counters: self.counters,
        })
    }

    /// One job: skip what needs no work, else compile (with retries) and publish.
    async fn job(&mut self, blueprint: Option<&Blueprint>, id: &str) -> Result<JobOutcome, TezzeretError> {
        let Some(blueprint) = blueprint else {
            self.counters.skipped_unknown_total += 1;
            tracing::warn!(blueprint = id, "tezzeret: not in the catalog; dropped");
            return Ok(JobOutcome::Skipped);
        };
        if self.library.contains(id) {
            self.counters.skipped_built_total += 1;
            tracing::info!(blueprint = id, "tezzeret: already in the library");
            return Ok(JobOutcome::Skipped);
        }
        let Some(kernel) = self.compile_with_retries(blueprint) else {
            self.counters.failed_total += 1;
            return Ok(JobOutcome::Failed);
        };
        let kernel = KernelArtifact { blueprint, bytes: kernel.bytes, guard_digest: kernel.guard_digest };
        self.library.publish(kernel).await?;
        self.counters.compiled_total += 1;
        Ok(JobOutcome::Compiled)
    }

    /// The first successful attempt of `1 + max_retries`, or `None`.
    fn compile_with_retries(&mut self, blueprint: &Blueprint) -> Option<super::CompiledKernel> {
        for attempt in 0..=self.config.max_retries {
            if attempt > 0 {
                self.counters.retries_total += 1;
            }
            match self.compiler.compile(blueprint) {
                Ok(kernel) => {
                    tracing::info!(blueprint = %blueprint.blueprint_id, attempt, bytes = kernel.bytes.len(), "tezzeret: compiled");
                    return Some(kernel);
                }
                Err(error) => log_failure(attempt, &error),
            }
        }
        None
    }

    /// Counters so far.
    pub fn counters(&self) -> ForgeCounters {
        self.counters
    }
}

fn log_failure(attempt: u32, error: &CompileError) {
    tracing::warn!(attempt, %error, "tezzeret: compile failed");
}

/// `source_subsystem` of Tezzeret's packets.
pub const SOURCE: &str = "tezzeret";

/// The pass's telemetry: `tezzeret.compile.retry_count` (this pass; the
/// `tezzeret_compile_retry_high` alert watches it), `tezzeret.compile.retries_total`,
/// `tezzeret.compile.compiled_total`, `tezzeret.compile.failed_total` and
/// `tezzeret.forge.pending`, then every other counter. WARNING level when
/// anything is left pending.
pub fn forge_telemetry(report: &ForgeReport, timestamp_ms: u64) -> Result<Vec<TelemetryPacket>, TelemetryTooLarge> {
    let level = if report.pending.is_empty() { TelemetryLevel::Info } else { TelemetryLevel::Warning };
    let header = TelemetryPacket {
        packet_id: format!("tezzeret-forge-{timestamp_ms}"),
        timestamp: Some(Timestamp::from_millis(timestamp_ms)),
        source_subsystem: SOURCE.to_owned(),
        level: level.into(),
        ..TelemetryPacket::default()
    };
    let count = |value: u64| value as f64;
    // The pass's figures first; the counters follow in declaration order.
    TelemetryBuilder::new(header)
        .metric(MessagePriority::High, MetricPoint::new("tezzeret.compile.retry_count", count(report.retry_count), ""))
        .metric(
            MessagePriority::Normal,
            MetricPoint::new("tezzeret.forge.pending", count(report.pending.len() as u64), ""),
        )
        .metrics(MessagePriority::Normal, report.counters.points())
        .build()
}
