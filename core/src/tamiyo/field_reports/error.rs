//! `TamiyoPersistenceError`: why the field-report store could not load or save.

use std::path::PathBuf;

use crate::leyline::DecodeError;
use crate::storage::StorageError;
use crate::wal::PersistenceError;

/// A failure of Tamiyo's field-report persistence. Names the file and, for damage,
/// the offset or record.
#[derive(Debug, thiserror::Error)]
pub enum TamiyoPersistenceError {
    /// The log is damaged (strict mode), from another version, over a bound, or the
    /// storage under it failed.
    #[error("tamiyo field reports: {0}")]
    Wal(#[from] PersistenceError),
    /// Strict mode: a record passed its checksum but is not a `FieldReport`.
    #[error("tamiyo field reports: {path}: record {index} (at offset {offset}) is not a FieldReport: {source}")]
    Decode {
        /// The log.
        path: PathBuf,
        /// The record's position in the log.
        index: usize,
        /// The record frame's offset.
        offset: u64,
        /// What the decoder said.
        #[source]
        source: DecodeError,
    },
    /// A sidecar or backup file could not be written or read.
    #[error("tamiyo field reports: {0}")]
    Storage(#[from] StorageError),
    /// A configuration variable holds a value that cannot be used.
    #[error("{name}={value:?} is invalid: expected {expected}")]
    Config {
        /// The variable.
        name: &'static str,
        /// What it held.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// A rewritten log did not read back as written (the disk changed it under us).
    #[error("tamiyo field reports: {path}: rewrote {written} reports but {read} read back")]
    RewriteMismatch {
        /// The log.
        path: PathBuf,
        /// Reports written.
        written: usize,
        /// Records recovered on reopening it.
        read: usize,
    },
    /// The log is poisoned (a failed fsync) and its reopen is backing off.
    #[error("tamiyo field reports: {path}: log poisoned by a failed write; reopening in {retry_in_ms} ms")]
    ReopenBackingOff {
        /// The log.
        path: PathBuf,
        /// How long until the next reopen is tried.
        retry_in_ms: u64,
    },
    /// A backup directory holds no log to restore.
    #[error("tamiyo field reports: {path}: no {file} to restore")]
    NothingToRestore {
        /// The backup directory.
        path: PathBuf,
        /// The file that is missing.
        file: &'static str,
    },
}
