//! `SimFile`: a handle on a [`SimDisk`] file.

use std::path::{Path, PathBuf};

use esper_core::storage::{StorageError, StorageFile, StorageOp};

use super::SimDisk;
use super::state::{DiskState, FileData};

/// An open file on a [`SimDisk`]. Like a POSIX descriptor it follows the file, not
/// the name, through renames and removals; unlike one it goes stale at a crash.
#[derive(Debug)]
pub struct SimFile {
    disk: SimDisk,
    path: PathBuf,
    id: u64,
    generation: u64,
}

impl SimFile {
    pub(super) fn new(disk: SimDisk, path: PathBuf, id: u64, generation: u64) -> Self {
        Self { disk, path, id, generation }
    }

    /// Runs `action` on the file's data under the disk lock, after the staleness check
    /// and any injected fault for `op`.
    fn with_file<T>(
        &self,
        op: StorageOp,
        action: impl FnOnce(&mut FileData, &mut DiskState) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return Err(StorageError::Stale { path: self.path.clone(), op });
        }
        state.injected_error(op, &self.path)?;
        let mut file = std::mem::take(state.file_mut(self.id, &self.path, op)?);
        let result = action(&mut file, &mut state);
        *state.file_mut(self.id, &self.path, op)? = file;
        result
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = self.disk.lock();
        if state.generation == self.generation {
            state.release(self.id);
        }
    }
}

impl StorageFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    async fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.path.clone();
        self.with_file(StorageOp::Append, |file, state| {
            let len = bytes.len() as u64;
            // The file is out of the map while `action` runs, so count its bytes here;
            // only a disk with a capacity pays for the count (a walk over every file).
            let over = state
                .capacity_bytes
                .is_some_and(|capacity| state.used_bytes() + file.current.len() as u64 + len > capacity);
            if over {
                tracing::info!(target: "esper_sim::disk", path = %path.display(), len, "injected ENOSPC");
                return Err(StorageError::NoSpace { path, op: StorageOp::Append, len });
            }
            file.current.extend_from_slice(bytes);
            Ok(())
        })
    }

    async fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        self.disk.read_delay().await;
        let path = self.path.clone();
        self.with_file(StorageOp::Read, |file, _| {
            let file_len = file.current.len() as u64;
            let range = usize::try_from(offset).ok().and_then(|start| Some(start..start.checked_add(len)?));
            range.and_then(|range| file.current.get(range)).map(<[u8]>::to_vec).ok_or(StorageError::OutOfRange {
                path,
                offset,
                len: len as u64,
                file_len,
            })
        })
    }

    async fn len(&mut self) -> Result<u64, StorageError> {
        self.with_file(StorageOp::Len, |file, _| Ok(file.current.len() as u64))
    }

    async fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        let path = self.path.clone();
        self.with_file(StorageOp::Truncate, |file, _| {
            let file_len = file.current.len();
            let beyond = || StorageError::TruncateBeyondEnd { path, len, file_len: file_len as u64 };
            let len = usize::try_from(len).ok().filter(|len| *len <= file_len).ok_or_else(beyond)?;
            file.current.truncate(len);
            Ok(())
        })
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        // What is durable is what had been handed over when fsync was called; the
        // snapshot lands only if the fsync completes (no crash meanwhile).
        let snapshot = self.with_file(StorageOp::Sync, |file, _| Ok(file.current.clone()))?;
        self.disk.fsync_delay().await;
        // `Len` is not a fault class: the fsync's one injection point was above.
        self.with_file(StorageOp::Len, |file, state| {
            state.fsyncs += 1;
            file.durable = snapshot;
            Ok(())
        })
    }
}
