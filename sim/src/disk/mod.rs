//! `SimDisk`: the simulated disk behind `esper-core`'s storage seam.
//!
//! An in-memory file system with the failure modes of a real one. Writes are pending
//! until fsync and renames until the directory is fsynced; [`SimDisk::crash`] throws
//! away what was pending and may tear the last partially written block
//! ([`crash::crash_image`]). The world arms faults from the fault schedule: EIO on
//! reads, writes or fsyncs, ENOSPC at a capacity, a bit flip at an offset, a
//! truncation at an offset, slower reads. fsync costs virtual time, so a crash can land between a
//! write and its fsync. Every random choice comes from the disk's own seeded stream.

mod crash;
mod file;
mod name;
mod state;

pub use crash::{Tear, crash_image};
pub use file::SimFile;
pub use state::{CrashEffect, DiskOp};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use esper_core::storage::{OpenMode, Storage, StorageError, StorageOp};
use rand_chacha::ChaCha8Rng;

use name::{Name, key_of};
use state::DiskState;

/// A simulated disk's physics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimDiskConfig {
    /// Unit in which unsynced writes reach the platter; a crash tears at most one.
    pub block_size: u64,
    /// Virtual time one fsync (of a file or a directory) takes.
    pub fsync_latency: Duration,
    /// ENOSPC once the files' bytes would exceed this; `None` for unbounded.
    pub capacity_bytes: Option<u64>,
    /// Virtual time one read takes (a slow or remote disk; zero by default).
    pub read_latency: Duration,
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        Self {
            block_size: 4096,
            fsync_latency: Duration::from_millis(2),
            capacity_bytes: None,
            read_latency: Duration::ZERO,
        }
    }
}

/// A simulated disk. Cheap to clone; clones share the same disk, which outlives the
/// host software that uses it (a crashed host's restart sees what survived).
#[derive(Debug, Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
    fsync_latency: Duration,
    read_latency: Duration,
    /// What a slow-reads fault adds to every read, in nanoseconds (shared by the
    /// clones, as the platter is).
    extra_read_nanos: Arc<AtomicU64>,
}

/// The directory holding `path`, as the disk's namespace understands it.
fn parent_of(path: &Path) -> PathBuf {
    esper_core::storage::parent_dir(path)
}

impl SimDisk {
    /// A blank disk whose crash choices come from `rng` (take it from the run's
    /// `RngTree`, e.g. `rng.child("disk").stream(host)`).
    pub fn new(config: SimDiskConfig, rng: ChaCha8Rng) -> Self {
        let state = DiskState::new(config.block_size, config.capacity_bytes, rng);
        Self {
            state: Arc::new(Mutex::new(state)),
            fsync_latency: config.fsync_latency,
            read_latency: config.read_latency,
            extra_read_nanos: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Power loss. Returns what happened to each surviving file.
    pub fn crash(&self) -> Vec<CrashEffect> {
        let effects = self.lock().crash();
        for effect in &effects {
            tracing::info!(
                target: "esper_sim::disk",
                path = %effect.path.display(),
                pending_bytes = effect.pending_bytes,
                len_after = effect.len_after,
                tear = effect.tear,
                "crash"
            );
        }
        effects
    }

    /// The next `count` operations of class `op` fail with EIO.
    pub fn fail_next(&self, op: DiskOp, count: u32) {
        *self.lock().armed_errors.entry(op).or_insert(0) += count;
    }

    /// Sets (or lifts, with `None`) the capacity past which appends fail with ENOSPC.
    pub fn set_capacity(&self, capacity_bytes: Option<u64>) {
        self.lock().capacity_bytes = capacity_bytes;
    }

    /// Every read takes `extra` more from now on (zero: reads at speed again).
    pub fn slow_reads(&self, extra: Duration) {
        let nanos = u64::try_from(extra.as_nanos()).unwrap_or(u64::MAX);
        self.extra_read_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Flips bit `bit` (0–7) of the byte at `offset` of `path`, durably (at-rest
    /// corruption). Returns whether the byte existed.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mask = 1_u8 << (bit % 8);
        let mut state = self.lock();
        let Some(file) = state.named(path) else { return false };
        let Ok(index) = usize::try_from(offset) else { return false };
        let mut flipped = false;
        for bytes in [&mut file.current, &mut file.durable] {
            if let Some(byte) = bytes.get_mut(index) {
                *byte ^= mask;
                flipped = true;
            }
        }
        flipped
    }

    /// Cuts `path` to `offset` bytes, durably (a lost tail). Returns whether it shrank.
    pub fn truncate_at(&self, path: &Path, offset: u64) -> bool {
        let mut state = self.lock();
        let Some(file) = state.named(path) else { return false };
        let Ok(len) = usize::try_from(offset) else { return false };
        let shrank = file.current.len() > len;
        file.current.truncate(len);
        file.durable.truncate(len);
        shrank
    }

    /// A separate disk holding a copy of this one's files as they are now, with
    /// no fault armed: what an invariant checker reads, so that an EIO or a full
    /// disk the schedule armed for the software cannot fail the check instead.
    pub fn inspection_copy(&self) -> SimDisk {
        let mut state = self.lock().clone();
        state.armed_errors.clear();
        state.capacity_bytes = None;
        SimDisk {
            state: Arc::new(Mutex::new(state)),
            fsync_latency: Duration::ZERO,
            read_latency: Duration::ZERO,
            extra_read_nanos: Arc::default(),
        }
    }

    /// fsyncs (of files and directories) completed so far.
    pub fn fsync_count(&self) -> u64 {
        self.lock().fsyncs
    }

    /// What a reader of `path` sees now, unsynced writes included.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.lock().named(path).map(|file| file.current.clone())
    }

    async fn fsync_delay(&self) {
        if !self.fsync_latency.is_zero() {
            tokio::time::sleep(self.fsync_latency).await;
        }
    }

    pub(super) async fn read_delay(&self) {
        let delay = self.read_latency + Duration::from_nanos(self.extra_read_nanos.load(Ordering::Relaxed));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

impl Storage for SimDisk {
    type File = SimFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> Result<SimFile, StorageError> {
        let mut state = self.lock();
        let id = match (state.id_of(path), mode) {
            (Some(id), _) => id,
            (None, OpenMode::Create) => state.create(path),
            (None, OpenMode::Existing) => {
                return Err(StorageError::NotFound { path: path.to_path_buf(), op: StorageOp::Open });
            }
        };
        state.acquire(id);
        Ok(SimFile::new(self.clone(), path.to_path_buf(), id, state.generation))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let mut state = self.lock();
        let id = state
            .names
            .remove(key_of(from).as_slice())
            .ok_or_else(|| StorageError::NotFound { path: from.to_path_buf(), op: StorageOp::Rename })?;
        state.changed(from);
        state.changed(to);
        if let Some(replaced) = state.names.insert(Name::new(to), id) {
            state.collect(replaced);
        }
        Ok(())
    }

    async fn remove(&self, path: &Path) -> Result<(), StorageError> {
        let mut state = self.lock();
        let id = state
            .names
            .remove(key_of(path).as_slice())
            .ok_or_else(|| StorageError::NotFound { path: path.to_path_buf(), op: StorageOp::Remove })?;
        state.changed(path);
        state.collect(id);
        Ok(())
    }

    async fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
        let state = self.lock();
        Ok(state.names.keys().map(Name::path).filter(|path| parent_of(path) == dir).map(Path::to_path_buf).collect())
    }

    async fn create_dir_all(&self, _dir: &Path) -> Result<(), StorageError> {
        // Directories are implicit in the sim's flat namespace.
        Ok(())
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        self.lock().injected_error(StorageOp::SyncDir, dir)?;
        let generation = self.lock().generation;
        self.fsync_delay().await;
        let mut state = self.lock();
        if state.generation != generation {
            return Err(StorageError::Stale { path: dir.to_path_buf(), op: StorageOp::SyncDir });
        }
        state.sync_dir(dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use esper_core::storage::StorageFile;

    use super::*;
    use crate::RngTree;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(future)
    }

    fn disk() -> SimDisk {
        SimDisk::new(SimDiskConfig::default(), RngTree::new(9).stream("disk"))
    }

    #[test]
    fn handles_go_stale_at_a_crash() {
        block_on(async {
            let disk = disk();
            let mut file = disk.open(Path::new("a"), OpenMode::Create).await.expect("create");
            disk.crash();
            let error = file.append(b"x").await.expect_err("stale");
            assert!(matches!(error, StorageError::Stale { op: StorageOp::Append, .. }), "{error}");
        });
    }

    #[test]
    fn an_unlinked_file_lives_while_a_handle_holds_it_and_is_freed_after() {
        block_on(async {
            let disk = disk();
            let mut file = disk.open(Path::new("d/a"), OpenMode::Create).await.expect("create");
            file.append(b"held").await.expect("write");
            disk.remove(Path::new("d/a")).await.expect("unlink");
            assert_eq!(file.read(0, 4).await.expect("still readable"), b"held");
            assert!(disk.list(Path::new("d")).await.expect("list").is_empty());
            drop(file);
            assert!(disk.lock().files.is_empty(), "the last handle frees the bytes");
        });
    }

    #[test]
    fn slow_reads_cost_virtual_time_until_lifted_and_spare_the_inspection_copy() {
        block_on(async {
            let disk = disk();
            let mut file = disk.open(Path::new("a"), OpenMode::Create).await.expect("create");
            file.append(b"bytes").await.expect("write");
            let timed_read = |mut file: SimFile| async move {
                let start = tokio::time::Instant::now();
                file.read(0, 5).await.expect("read");
                (start.elapsed(), file)
            };
            disk.slow_reads(Duration::from_millis(40));
            let (slow, file) = timed_read(file).await;
            assert_eq!(slow, Duration::from_millis(40));
            let inspection = disk.inspection_copy().open(Path::new("a"), OpenMode::Existing).await.expect("open");
            assert_eq!(timed_read(inspection).await.0, Duration::ZERO, "the checker reads at speed");
            disk.slow_reads(Duration::ZERO);
            assert_eq!(timed_read(file).await.0, Duration::ZERO);
        });
    }

    #[test]
    fn capacity_counts_every_file() {
        block_on(async {
            let disk = disk();
            disk.set_capacity(Some(10));
            let mut first = disk.open(Path::new("a"), OpenMode::Create).await.expect("create");
            let mut second = disk.open(Path::new("b"), OpenMode::Create).await.expect("create");
            first.append(&[0; 6]).await.expect("fits");
            let error = second.append(&[0; 5]).await.expect_err("11 > 10");
            assert!(matches!(error, StorageError::NoSpace { len: 5, .. }), "{error}");
            second.append(&[0; 4]).await.expect("exactly full");
        });
    }
}
