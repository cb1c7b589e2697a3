//! What `esper tamiyo-wal backup|restore` and `esper wal-soak` do, on real files.
//!
//! Each call builds a current-thread tokio runtime (the store's API is async because
//! the storage seam is) and runs one operation on [`RealStorage`].

use std::path::Path;

use esper_core::storage::RealStorage;
use esper_core::tamiyo::field_reports::{BackupReport, FieldReportConfig, TamiyoPersistenceError, backup, restore};

use crate::real_profile::process_env;
use crate::wal_soak::{SoakConfig, SoakError, SoakReport, run_real};

/// The store in `dir`, configured from the process environment
/// (`TAMIYO_WAL_STRICT_VALIDATION`, `TAMIYO_FIELD_REPORT_RETENTION_HOURS`).
pub fn config_from_env(dir: &Path) -> Result<FieldReportConfig, TamiyoPersistenceError> {
    FieldReportConfig::from_env(dir, process_env)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_time().build()
}

/// Copies the store in `config.dir` to `dest`.
pub fn backup_store(config: &FieldReportConfig, dest: &Path) -> Result<BackupReport, TamiyoPersistenceError> {
    let runtime = runtime().map_err(|error| io_error(&config.dir, &error))?;
    runtime.block_on(backup(&RealStorage, config, dest))
}

/// Replaces the store in `config.dir` with the backup in `from`.
pub fn restore_store(config: &FieldReportConfig, from: &Path) -> Result<BackupReport, TamiyoPersistenceError> {
    let runtime = runtime().map_err(|error| io_error(&config.dir, &error))?;
    runtime.block_on(restore(&RealStorage, config, from))
}

/// Runs the WAL soak on real files under `workdir`; `start_ms` is Unix ms now.
pub fn soak(workdir: &Path, config: SoakConfig, start_ms: u64) -> Result<SoakReport, SoakError> {
    let runtime = runtime().map_err(|error| SoakError::Usage(format!("cannot start a tokio runtime: {error}")))?;
    runtime.block_on(run_real(workdir, config, start_ms))
}

fn io_error(dir: &Path, error: &std::io::Error) -> TamiyoPersistenceError {
    TamiyoPersistenceError::Storage(esper_core::storage::StorageError::from_io(
        error,
        esper_core::storage::StorageOp::Open,
        dir,
        0,
    ))
}
