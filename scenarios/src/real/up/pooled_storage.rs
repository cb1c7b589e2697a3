//! `PooledStorage`: [`RealStorage`] with every system call on tokio's blocking pool.
//!
//! `esper up` runs all its services on one current-thread executor. `RealStorage`
//! does its system calls inside its futures, so one slow fsync (a busy disk, a
//! network volume) would stop every task on that thread for its length: Tamiyo's
//! RPC server, Weatherlight's heartbeats, Nissa's ingest. Here each call is a
//! `spawn_blocking` job and the calling task awaits its result, so a slow disk
//! stalls only the task that is waiting on it. Real profile only: the sim keeps its
//! simulated disk on its single thread, and `esper-core` never leaves the calling
//! task (clippy.toml bans `spawn_blocking` there).
//!
//! A file is shared with its in-flight job through a mutex rather than moved into
//! it, so a caller that gives up waiting (a `select!` that took another branch)
//! leaves the file usable: the job finishes on its own and releases the lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use esper_core::storage::{OpenMode, RealFile, RealStorage, Storage, StorageError, StorageFile, StorageOp};

/// [`RealStorage`] on the blocking pool, with an optional delay before every fsync
/// (`esper up --fault-fsync-delay`, to show a slow disk stalls nothing else).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PooledStorage {
    /// Slept on the blocking thread before each file or directory fsync.
    pub fsync_delay: Duration,
}

/// A [`RealFile`] whose calls run on the blocking pool.
#[derive(Debug)]
pub struct PooledFile {
    path: PathBuf,
    file: Arc<Mutex<RealFile>>,
    fsync_delay: Duration,
}

/// Runs `call` on the blocking pool. A job that panicked (or a runtime shutting
/// down under it) is an I/O error on `path`, so callers see a typed error.
async fn off_executor<T: Send + 'static>(
    op: StorageOp,
    path: &Path,
    call: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    #[allow(clippy::disallowed_methods, reason = "real profile only: keeps file I/O off the shared executor")]
    let job = tokio::task::spawn_blocking(call);
    job.await.unwrap_or_else(|error| Err(StorageError::Io { path: path.to_path_buf(), op, detail: error.to_string() }))
}

/// Sleeps the injected fsync delay on the blocking thread that is about to fsync.
fn slow_disk(delay: Duration) {
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
}

impl Storage for PooledStorage {
    type File = PooledFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> Result<PooledFile, StorageError> {
        let owned = path.to_path_buf();
        let file = off_executor(StorageOp::Open, path, move || RealStorage::open_blocking(&owned, mode)).await?;
        Ok(PooledFile { path: path.to_path_buf(), file: Arc::new(Mutex::new(file)), fsync_delay: self.fsync_delay })
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let (owned_from, owned_to) = (from.to_path_buf(), to.to_path_buf());
        off_executor(StorageOp::Rename, from, move || RealStorage::rename_blocking(&owned_from, &owned_to)).await
    }

    async fn remove(&self, path: &Path) -> Result<(), StorageError> {
        let owned = path.to_path_buf();
        off_executor(StorageOp::Remove, path, move || RealStorage::remove_blocking(&owned)).await
    }

    async fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
        let owned = dir.to_path_buf();
        off_executor(StorageOp::List, dir, move || RealStorage::list_blocking(&owned)).await
    }

    async fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        let owned = dir.to_path_buf();
        off_executor(StorageOp::CreateDir, dir, move || RealStorage::create_dir_all_blocking(&owned)).await
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        let (owned, delay) = (dir.to_path_buf(), self.fsync_delay);
        off_executor(StorageOp::SyncDir, dir, move || {
            slow_disk(delay);
            RealStorage::sync_dir_blocking(&owned)
        })
        .await
    }
}

impl PooledFile {
    /// Runs `call` on the file, on the blocking pool. A poisoned lock means an
    /// earlier job panicked mid-call; the file itself is still a valid handle.
    async fn with_file<T: Send + 'static>(
        &self,
        op: StorageOp,
        call: impl FnOnce(&mut RealFile) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let file = Arc::clone(&self.file);
        off_executor(op, &self.path, move || call(&mut file.lock().unwrap_or_else(PoisonError::into_inner))).await
    }
}

impl StorageFile for PooledFile {
    fn path(&self) -> &Path {
        &self.path
    }

    async fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let owned = bytes.to_vec();
        self.with_file(StorageOp::Append, move |file| file.append_blocking(&owned)).await
    }

    async fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        self.with_file(StorageOp::Read, move |file| file.read_blocking(offset, len)).await
    }

    async fn len(&mut self) -> Result<u64, StorageError> {
        self.with_file(StorageOp::Len, RealFile::len_blocking).await
    }

    async fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.with_file(StorageOp::Truncate, move |file| file.truncate_blocking(len)).await
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        let delay = self.fsync_delay;
        self.with_file(StorageOp::Sync, move |file| {
            slow_disk(delay);
            file.sync_blocking()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// The property `esper up` relies on: while a (slow) fsync is in flight, other
    /// tasks on the same current-thread executor keep running. With the calls
    /// inline (plain `RealStorage`, or `off_executor` calling `call()` directly)
    /// the ticker gets no turn during the 200 ms fsync and this fails.
    #[test]
    fn a_slow_fsync_leaves_the_executor_free() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = PooledStorage { fsync_delay: Duration::from_millis(200) };
        let ticks = Cell::new(0_u32);
        runtime.block_on(async {
            let mut file = storage.open(&dir.path().join("log"), OpenMode::Create).await.expect("open");
            file.append(b"record").await.expect("append");
            let ticker = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.set(ticks.get() + 1);
                }
            };
            tokio::select! {
                biased;
                synced = file.sync() => synced.expect("sync"),
                () = ticker => {}
            }
            assert_eq!(file.read(0, 6).await.expect("read"), b"record");
        });
        assert!(ticks.get() >= 10, "only {} 5 ms ticks during a 200 ms fsync: the executor was blocked", ticks.get());
    }
}
