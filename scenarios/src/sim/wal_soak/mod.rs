//! The Tamiyo WAL soak (Esper-Lite's `scripts/tamiyo_wal_soak.py`), twice over.
//!
//! The soak: append field reports one by one (each fsynced, most then marked
//! published in the index sidecar); every `truncate_every` reports, append a torn
//! record — a bare length prefix, what a crash mid-append leaves — and restart the
//! store. Strict validation must refuse the torn log with
//! `TamiyoPersistenceError`; non-strict must cut it away and keep every acknowledged
//! report. [`run_real`] does it on real files ([`RealStorage`]);
//! [`sim::WalSoakScenario`] does it on the simulated disk, with seeded power losses
//! and fsync errors on top.

mod batches;
mod cut_warnings;
pub mod records;
mod refusal;
mod rot;
pub mod sim;

use std::path::{Path, PathBuf};

use esper_core::storage::{RealStorage, Storage, StorageError};
use esper_core::tamiyo::field_reports::{
    FieldReportConfig, FieldReportMetrics, FieldReportStore, TamiyoPersistenceError,
};

use records::{check_recovered, inject_torn_record, publish_outcome, soak_report};

/// How long and how hard to soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoakConfig {
    /// Reports to append.
    pub iterations: u64,
    /// Inject a torn record and restart after every this many reports.
    pub truncate_every: u64,
    /// `TAMIYO_WAL_STRICT_VALIDATION`.
    pub strict: bool,
}

/// Bound on iterations, so a typo cannot fill a disk.
pub const MAX_ITERATIONS: u64 = 1_000_000;

/// What a soak saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoakReport {
    /// Reports appended and acknowledged.
    pub acknowledged: u64,
    /// Torn records injected.
    pub injections: u64,
    /// Store restarts.
    pub restarts: u64,
    /// Reports in the store at the end.
    pub recovered: u64,
    /// Bytes of damage cut away over all restarts.
    pub truncated_bytes: u64,
    /// Counters of the last open store.
    pub metrics: FieldReportMetrics,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "acknowledged={} injections={} restarts={} recovered={} truncated_bytes={}",
            self.acknowledged, self.injections, self.restarts, self.recovered, self.truncated_bytes
        )?;
        for (name, value) in self.metrics.named() {
            write!(formatter, " {name}={value}")?;
        }
        Ok(())
    }
}

/// Why a soak stopped.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The store refused to open or write (in strict mode: the expected outcome).
    #[error("wal-soak: iteration {iteration}: {source}")]
    Persistence {
        /// The report being appended or the restart after it.
        iteration: u64,
        /// The typed error.
        #[source]
        source: TamiyoPersistenceError,
        /// What had happened by then.
        report: Box<SoakReport>,
    },
    /// The torn record could not be written.
    #[error("wal-soak: iteration {iteration}: injecting the torn record: {source}")]
    Injection {
        /// The iteration.
        iteration: u64,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// Recovery broke a promise: an acknowledged report is missing, or garbage appeared.
    #[error("wal-soak: iteration {iteration}: {detail}")]
    Invariant {
        /// The iteration.
        iteration: u64,
        /// What was wrong.
        detail: String,
    },
    /// The arguments or work directory cannot be used.
    #[error("wal-soak: {0}")]
    Usage(String),
}

/// Runs the soak on real files under `workdir` (which must not hold a store yet).
pub async fn run_real(workdir: &Path, config: SoakConfig, start_ms: u64) -> Result<SoakReport, SoakError> {
    if config.iterations == 0 || config.iterations > MAX_ITERATIONS || config.truncate_every == 0 {
        return Err(SoakError::Usage(format!(
            "--iterations must be 1..={MAX_ITERATIONS} and --truncate-every at least 1"
        )));
    }
    let mut store_config = FieldReportConfig::new(store_dir(workdir));
    store_config.wal.strict = config.strict;
    if std::fs::exists(store_config.log_path()).unwrap_or(true) {
        return Err(SoakError::Usage(format!(
            "{} already holds a field-report log (or cannot be read); pass an empty --workdir",
            store_config.dir.display()
        )));
    }
    soak(RealStorage, store_config, config, start_ms).await
}

/// Where the store lives under a soak's work directory (Esper-Lite's layout).
pub fn store_dir(workdir: &Path) -> PathBuf {
    workdir.join("var").join("tamiyo")
}

/// The soak itself, on any storage. Logical time advances one second per report.
async fn soak<S: Storage>(
    storage: S,
    store_config: FieldReportConfig,
    config: SoakConfig,
    start_ms: u64,
) -> Result<SoakReport, SoakError> {
    let mut report = SoakReport::default();
    let mut acked = Vec::new();
    let persistence = |iteration, report: &SoakReport| {
        let report = Box::new(report.clone());
        move |source| SoakError::Persistence { iteration, source, report }
    };
    let mut store = FieldReportStore::open(storage.clone(), store_config.clone(), start_ms)
        .await
        .map_err(persistence(0, &report))?;
    for iteration in 1..=config.iterations {
        let now_ms = start_ms + iteration * 1_000;
        store.append(soak_report(iteration, now_ms), now_ms).await.map_err(persistence(iteration, &report))?;
        acked.push(iteration);
        report.acknowledged += 1;
        let entry = publish_outcome(iteration, now_ms);
        let id = records::report_id(iteration);
        store.update_retry(&id, entry).await.map_err(persistence(iteration, &report))?;
        if iteration % config.truncate_every != 0 {
            continue;
        }
        drop(store);
        let log = store_config.log_path();
        inject_torn_record(&storage, &log).await.map_err(|source| SoakError::Injection { iteration, source })?;
        report.injections += 1;
        report.restarts += 1;
        store = FieldReportStore::open(storage.clone(), store_config.clone(), now_ms)
            .await
            .map_err(persistence(iteration, &report))?;
        report.truncated_bytes += store.metrics().wal_truncated_bytes;
        check_recovered(&store, &acked, iteration).map_err(|detail| SoakError::Invariant { iteration, detail })?;
    }
    report.recovered = store.reports().len() as u64;
    report.metrics = store.metrics();
    Ok(report)
}
