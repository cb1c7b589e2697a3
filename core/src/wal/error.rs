//! `PersistenceError`: why a log could not be opened or written.

use std::path::PathBuf;

use crate::storage::StorageError;

use super::scan::{Damage, DamageReason};

/// A log that cannot be used as asked. Every variant names the file; damage
/// variants name the offset, so an operator can look at the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistenceError {
    /// Strict mode: the log ends in a cut-off record or header.
    #[error("{path}: log truncated at offset {offset}: {reason} ({dropped_bytes} bytes past the last valid record)")]
    Truncated {
        /// The log.
        path: PathBuf,
        /// First byte past the valid prefix.
        offset: u64,
        /// What is cut off.
        reason: DamageReason,
        /// Bytes from `offset` to the end.
        dropped_bytes: u64,
    },
    /// Strict mode: the log holds bytes that fail their checks.
    #[error("{path}: log corrupt at offset {offset}: {reason} ({dropped_bytes} bytes from there to the end)")]
    Corrupt {
        /// The log.
        path: PathBuf,
        /// First byte past the valid prefix.
        offset: u64,
        /// What is wrong there.
        reason: DamageReason,
        /// Bytes from `offset` to the end.
        dropped_bytes: u64,
    },
    /// The header is intact but from another format version; never truncated.
    #[error("{path}: log format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The log.
        path: PathBuf,
        /// The version in the header.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The log is larger than the configured bound, so recovery refuses to load it.
    #[error("{path}: log is {len} bytes, over the limit of {limit} (raise max_log_bytes or compact)")]
    LogTooLarge {
        /// The log.
        path: PathBuf,
        /// Its length, or what it would become.
        len: u64,
        /// The bound.
        limit: u64,
    },
    /// A record is larger than the configured bound.
    #[error("{path}: record of {len} bytes is over the limit of {limit}")]
    RecordTooLarge {
        /// The log.
        path: PathBuf,
        /// The record's length.
        len: u64,
        /// The bound.
        limit: u32,
    },
    /// A batch holds no records, or more than the configured bound.
    #[error("{path}: batch of {len} records; a batch holds 1 to {limit}")]
    BadBatch {
        /// The log.
        path: PathBuf,
        /// Records in the batch.
        len: usize,
        /// The bound.
        limit: usize,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown; reopen the log
    /// to recover it.
    #[error("{path}: log refuses writes after a failed write or fsync; reopen it to recover")]
    Poisoned {
        /// The log.
        path: PathBuf,
    },
    /// The group-commit task has stopped.
    #[error("{path}: the group-commit task has stopped")]
    Closed {
        /// The log.
        path: PathBuf,
    },
    /// The storage underneath failed.
    #[error("log {path}: {source}")]
    Storage {
        /// The log.
        path: PathBuf,
        /// What the storage said.
        #[source]
        source: StorageError,
    },
}

impl PersistenceError {
    /// The strict-mode refusal for `damage` found in `path`.
    pub fn from_damage(path: PathBuf, damage: Damage) -> Self {
        let Damage { offset, reason, dropped_bytes } = damage;
        if reason.is_truncation() {
            Self::Truncated { path, offset, reason, dropped_bytes }
        } else {
            Self::Corrupt { path, offset, reason, dropped_bytes }
        }
    }

    /// Wraps a storage failure on `path`.
    pub fn storage(path: &std::path::Path) -> impl FnOnce(StorageError) -> Self + '_ {
        move |source| Self::Storage { path: path.to_path_buf(), source }
    }
}
