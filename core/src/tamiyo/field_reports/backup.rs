//! Backup and restore of a store directory (`esper tamiyo-wal backup|restore`).
//!
//! Both run with the store closed. The log is checked on the way (strict mode refuses
//! a damaged one; non-strict copies its valid prefix and says what it left out) and
//! always written out as a clean log; the sidecars are copied as they are, or removed
//! at the destination when the source has none, so they are rebuilt on open. Every
//! file is written atomically.

use std::path::{Path, PathBuf};

use crate::storage::{Storage, StorageError, read_if_exists, write_atomic};
use crate::wal::rewrite::encode_log;
use crate::wal::{Damage, inspect};

use super::config::{FieldReportConfig, INDEX_FILE, LOG_FILE, SIDECAR_LIMIT_BYTES, WINDOWS_FILE};
use super::error::TamiyoPersistenceError;

/// What a backup or restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Files written at the destination.
    pub written: Vec<PathBuf>,
    /// Sidecars removed at the destination (absent at the source).
    pub removed: Vec<PathBuf>,
    /// Records in the copied log.
    pub records: usize,
    /// Damage left out of the copy (non-strict mode only).
    pub damage: Option<Damage>,
}

/// Copies the store in `config.dir` to `dest`.
pub async fn backup<S: Storage>(
    storage: &S,
    config: &FieldReportConfig,
    dest: &Path,
) -> Result<BackupReport, TamiyoPersistenceError> {
    copy_store(storage, config, &config.dir, dest).await
}

/// Replaces the store in `config.dir` with the backup in `from`.
pub async fn restore<S: Storage>(
    storage: &S,
    config: &FieldReportConfig,
    from: &Path,
) -> Result<BackupReport, TamiyoPersistenceError> {
    copy_store(storage, config, from, &config.dir).await
}

async fn copy_store<S: Storage>(
    storage: &S,
    config: &FieldReportConfig,
    source: &Path,
    dest: &Path,
) -> Result<BackupReport, TamiyoPersistenceError> {
    let source_log = source.join(LOG_FILE);
    let recovery = match inspect(storage, &source_log, &config.wal).await {
        Err(crate::wal::PersistenceError::Storage { source: StorageError::NotFound { .. }, .. }) => {
            return Err(TamiyoPersistenceError::NothingToRestore { path: source.to_path_buf(), file: LOG_FILE });
        }
        other => other?,
    };
    let records: Vec<&[u8]> = recovery.records().collect();
    let log = encode_log(&dest.join(LOG_FILE), &records, &config.wal)?;
    storage.create_dir_all(dest).await?;
    write_atomic(storage, &dest.join(LOG_FILE), &log).await?;
    let mut report = BackupReport {
        written: vec![dest.join(LOG_FILE)],
        removed: Vec::new(),
        records: records.len(),
        damage: recovery.damage,
    };
    for sidecar in [INDEX_FILE, WINDOWS_FILE] {
        let target = dest.join(sidecar);
        match read_if_exists(storage, &source.join(sidecar), SIDECAR_LIMIT_BYTES).await? {
            Some(bytes) => {
                write_atomic(storage, &target, &bytes).await?;
                report.written.push(target);
            }
            None => match storage.remove(&target).await {
                Ok(()) => report.removed.push(target),
                Err(StorageError::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            },
        }
    }
    Ok(report)
}
