//! What `esper tamiyo-wal backup|restore`, `esper field-reports dump` and
//! `esper wal-soak` do, on real files.
//!
//! Each call builds a current-thread tokio runtime (the store's API is async because
//! the storage seam is) and runs one operation on [`RealStorage`].

use std::path::Path;

use std::time::Duration;

use esper_core::leyline::{Contract as _, FieldReport};
use esper_core::storage::RealStorage;
use esper_core::tamiyo::field_reports::{BackupReport, FieldReportConfig, TamiyoPersistenceError, backup, restore};
use esper_core::wal::{Damage, WalConfig, inspect};

use crate::real::real_profile::process_env;
use crate::sim::wal_soak::{SoakConfig, SoakError, SoakReport, run_real};

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

/// How often `--follow` reads the log again.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// How a dump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpEnd {
    /// Reports printed.
    pub printed: usize,
    /// Records whose bytes are not a field report (printed as an error line each).
    pub undecodable: usize,
    /// Where the valid prefix of the log ends, if it is damaged.
    pub damage: Option<Damage>,
}

/// Prints every field report in `config.dir`'s log as one JSON line through
/// `line`, oldest first, without changing the log (a read-only
/// [`inspect`], never the store's repairing open). With `follow`, reads the log
/// again every 250 ms and prints the reports appended since, until the process
/// is stopped; a log that does not exist yet is waited for.
pub fn dump_reports(
    config: &FieldReportConfig,
    follow: bool,
    mut line: impl FnMut(Result<String, String>),
) -> Result<DumpEnd, TamiyoPersistenceError> {
    let runtime = runtime().map_err(|error| io_error(&config.dir, &error))?;
    // Damage past the valid prefix is reported, not refused: the point is to read what is there.
    let wal = WalConfig { strict: false, ..config.wal };
    runtime.block_on(async {
        let mut end = DumpEnd { printed: 0, undecodable: 0, damage: None };
        loop {
            if follow && !config.log_path().exists() {
                // Not written yet: the service has not appended its first report.
                tokio::time::sleep(FOLLOW_EVERY).await;
                continue;
            }
            match inspect(&RealStorage, &config.log_path(), &wal).await {
                Ok(recovery) => {
                    for (offset, bytes) in recovery.records_with_offsets().skip(end.printed + end.undecodable) {
                        match FieldReport::decode_closed(bytes)
                            .map_err(|e| e.to_string())
                            .and_then(|report| serde_json::to_string(&report).map_err(|e| e.to_string()))
                        {
                            Ok(json) => {
                                end.printed += 1;
                                line(Ok(json));
                            }
                            Err(error) => {
                                end.undecodable += 1;
                                line(Err(format!("record at offset {offset} is not a field report: {error}")));
                            }
                        }
                    }
                    end.damage = recovery.damage;
                }
                Err(error) => return Err(error.into()),
            }
            if !follow {
                return Ok(end);
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    })
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
