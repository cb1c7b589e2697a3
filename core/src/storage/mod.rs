//! The storage seam.
//!
//! Everything Esper persists (write-ahead logs, sidecar JSON, checkpoints) goes through
//! a [`Storage`]. The real profile passes [`RealStorage`] (files on the local file
//! system); the sim passes `esper_sim::SimDisk`, an in-memory disk that loses unsynced
//! writes on a crash and injects faults from the run's fault schedule. Code under test
//! cannot tell the two apart.
//!
//! # Why the trait is async
//!
//! A durable write is only as interesting as what can happen while it is in flight.
//! The sim disk charges virtual time for `fsync` (a `tokio::time::sleep`), so a crash
//! can land between a write and its fsync, and group commit forms real batches: while
//! one batch is being synced, the next appends queue up. A synchronous trait would make
//! every write-plus-fsync atomic with respect to the simulated scheduler and hide
//! exactly the bugs the sim exists to find.
//!
//! `RealStorage` does its system calls directly inside these futures (they block the
//! calling task for the length of the syscall). `tokio::fs` would instead hand each call
//! to the blocking thread pool through `spawn_blocking`, which the determinism lint bans
//! in `esper-core`; Esper's writers are one task per log and their records are small,
//! so the blocking is bounded by one fsync. A real-profile process that serves other
//! things on the same thread (`esper up`) wraps it instead in the scenarios crate's
//! `up::PooledStorage`, which runs the same calls (`RealFile::sync_blocking` and
//! friends) on tokio's blocking pool, so a slow disk stalls only the task waiting on it.
//!
//! # Durability contract (both implementations)
//!
//! * Bytes written by [`StorageFile::append`] or removed by [`StorageFile::truncate`]
//!   are durable only after [`StorageFile::sync`] returns `Ok`.
//! * Creating, renaming and removing a file are durable only after
//!   [`Storage::sync_dir`] on its parent directory returns `Ok`.
//! * After an error from `sync`, the file's durable contents are unknown; callers must
//!   stop writing and recover by reopening (see `wal`).

mod atomic;
mod error;
mod real;

pub use atomic::{read_if_exists, write_atomic};
pub use error::{StorageError, StorageOp};
pub use real::{RealFile, RealStorage};

use std::future::Future;
use std::path::{Path, PathBuf};

/// How [`Storage::open`] treats a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file, empty, if it does not exist.
    Create,
    /// Fail with [`StorageError::NotFound`] if the file does not exist.
    Existing,
}

/// A file system: named files in directories, durable only when synced.
pub trait Storage: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// An open file.
    type File: StorageFile;

    /// Opens `path` for appending and reading.
    fn open(&self, path: &Path, mode: OpenMode) -> impl Future<Output = Result<Self::File, StorageError>> + Send;

    /// Renames `from` to `to`, replacing `to` if it exists. Atomic: a reader sees
    /// either the old or the new `to`, never a mix.
    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The files directly inside `dir`, sorted by path. A missing directory is empty.
    fn list(&self, dir: &Path) -> impl Future<Output = Result<Vec<PathBuf>, StorageError>> + Send;

    /// Creates `dir` and its parents if missing (a no-op where directories are implicit).
    fn create_dir_all(&self, dir: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Makes the creations, renames and removals inside `dir` durable.
    fn sync_dir(&self, dir: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// An open file: append-only writes, positional reads, truncation, fsync.
#[allow(clippy::len_without_is_empty, reason = "an async length query; emptiness is `len().await? == 0`")]
pub trait StorageFile: Send + std::fmt::Debug + 'static {
    /// The path the file was opened at (for error messages).
    fn path(&self) -> &Path;

    /// Appends `bytes` at the end of the file. Not durable until [`StorageFile::sync`].
    fn append(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Reads exactly `len` bytes starting at `offset`.
    fn read(&mut self, offset: u64, len: usize) -> impl Future<Output = Result<Vec<u8>, StorageError>> + Send;

    /// The file's current length in bytes, including unsynced appends.
    fn len(&mut self) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Cuts the file to `len` bytes (which must not exceed its length).
    fn truncate(&mut self, len: u64) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Makes every earlier append and truncation durable (fsync).
    fn sync(&mut self) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// The directory holding `path` (`.` for a bare file name), for [`Storage::sync_dir`].
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
