//! The disk's state: files, the two namespaces (current and durable), armed faults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use esper_core::storage::{StorageError, StorageOp};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::crash::crash_image;
use super::name::{Name, key_of};

/// The operation classes a [`crate::Fault::DiskError`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskOp {
    /// Reads.
    Read,
    /// Appends and truncations.
    Write,
    /// fsync of files and directories.
    Fsync,
}

impl DiskOp {
    /// Stable name for traces and `Display`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Fsync => "fsync",
        }
    }

    fn of(op: StorageOp) -> Option<Self> {
        match op {
            StorageOp::Read => Some(Self::Read),
            StorageOp::Append | StorageOp::Truncate => Some(Self::Write),
            StorageOp::Sync | StorageOp::SyncDir => Some(Self::Fsync),
            _ => None,
        }
    }
}

/// One file's bytes: what the writer handed over, and what survives a crash.
#[derive(Debug, Clone, Default)]
pub(super) struct FileData {
    pub(super) current: Vec<u8>,
    pub(super) durable: Vec<u8>,
}

/// Everything behind a [`super::SimDisk`]'s lock.
#[derive(Debug, Clone)]
pub(super) struct DiskState {
    pub(super) block_size: u64,
    pub(super) rng: ChaCha8Rng,
    /// Bumped by every crash; handles from an older generation are stale.
    pub(super) generation: u64,
    pub(super) files: BTreeMap<u64, FileData>,
    /// The namespace as running code sees it.
    pub(super) names: BTreeMap<Name, u64>,
    /// The namespace as a crash would leave it (updated by directory fsync).
    pub(super) durable_names: BTreeMap<Name, u64>,
    /// Per directory, the names changed since its last fsync. Every other name is
    /// bound alike in `names` and `durable_names`, so a directory fsync only has to
    /// copy these — a directory of n files would otherwise cost n lookups per fsync.
    pub(super) unsynced_names: BTreeMap<Vec<u8>, BTreeSet<Name>>,
    pub(super) next_id: u64,
    /// Remaining injected I/O errors per operation class.
    pub(super) armed_errors: BTreeMap<DiskOp, u32>,
    pub(super) capacity_bytes: Option<u64>,
    /// Open handles per file: an unlinked file lives on while a handle holds it.
    pub(super) open_handles: BTreeMap<u64, usize>,
    /// Completed fsyncs (files and directories), for group-commit checks.
    pub(super) fsyncs: u64,
}

/// What a crash did to one file, for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashEffect {
    /// The file, as named in the durable namespace.
    pub path: PathBuf,
    /// Bytes written but never synced.
    pub pending_bytes: u64,
    /// Bytes of the file after the crash.
    pub len_after: u64,
    /// How the last block ended up.
    pub tear: &'static str,
}

impl DiskState {
    pub(super) fn new(block_size: u64, capacity_bytes: Option<u64>, rng: ChaCha8Rng) -> Self {
        assert!(block_size > 0, "block size must be positive");
        Self {
            block_size,
            rng,
            generation: 0,
            files: BTreeMap::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            unsynced_names: BTreeMap::new(),
            next_id: 0,
            armed_errors: BTreeMap::new(),
            capacity_bytes,
            open_handles: BTreeMap::new(),
            fsyncs: 0,
        }
    }

    /// Fails the operation with EIO if a fault is armed for its class.
    pub(super) fn injected_error(&mut self, op: StorageOp, path: &Path) -> Result<(), StorageError> {
        let Some(class) = DiskOp::of(op) else { return Ok(()) };
        match self.armed_errors.get_mut(&class) {
            Some(remaining) if *remaining > 0 => {
                *remaining -= 1;
                tracing::info!(target: "esper_sim::disk", op = %op, path = %path.display(), "injected EIO");
                Err(StorageError::Io { path: path.to_path_buf(), op, detail: "injected EIO".to_owned() })
            }
            _ => Ok(()),
        }
    }

    /// Bytes in use: every file's current length.
    pub(super) fn used_bytes(&self) -> u64 {
        self.files.values().map(|file| file.current.len() as u64).sum()
    }

    /// The id currently named `path`, if any.
    pub(super) fn id_of(&self, path: &Path) -> Option<u64> {
        self.names.get(key_of(path).as_slice()).copied()
    }

    pub(super) fn file_mut(&mut self, id: u64, path: &Path, op: StorageOp) -> Result<&mut FileData, StorageError> {
        self.files.get_mut(&id).ok_or_else(|| StorageError::Stale { path: path.to_path_buf(), op })
    }

    pub(super) fn create(&mut self, path: &Path) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.files.insert(id, FileData::default());
        let name = Name::new(path);
        self.names.insert(name.clone(), id);
        self.unsynced(name);
        id
    }

    /// Records that the binding of `path` changed and is not yet durable.
    pub(super) fn changed(&mut self, path: &Path) {
        self.unsynced(Name::new(path));
    }

    fn unsynced(&mut self, name: Name) {
        self.unsynced_names.entry(name.parent_key()).or_default().insert(name);
    }

    /// Drops file `id`'s bytes once no name (current or durable) and no handle refers
    /// to it, as a file system frees an unlinked inode on last close.
    pub(super) fn collect(&mut self, id: u64) {
        let named = self.names.values().chain(self.durable_names.values()).any(|named| *named == id);
        if !named && !self.open_handles.contains_key(&id) {
            self.files.remove(&id);
        }
    }

    /// Registers a new handle on file `id`.
    pub(super) fn acquire(&mut self, id: u64) {
        *self.open_handles.entry(id).or_insert(0) += 1;
    }

    /// A handle on file `id` was dropped.
    pub(super) fn release(&mut self, id: u64) {
        if let Some(count) = self.open_handles.get_mut(&id) {
            *count -= 1;
            if *count == 0 {
                self.open_handles.remove(&id);
                self.collect(id);
            }
        }
    }

    /// Makes the current namespace entries inside `dir` durable.
    pub(super) fn sync_dir(&mut self, dir: &Path) {
        self.fsyncs += 1;
        let mut released = Vec::new();
        for name in self.unsynced_names.remove(key_of(dir).as_slice()).unwrap_or_default() {
            let current = self.names.get(&name).copied();
            let previous = match current {
                Some(id) => self.durable_names.insert(name, id),
                None => self.durable_names.remove(&name),
            };
            released.extend(previous.filter(|id| Some(*id) != current));
        }
        for id in released {
            self.collect(id);
        }
    }

    /// Power loss: unsynced namespace changes vanish, unsynced bytes are dropped or
    /// torn, every open handle goes stale.
    pub(super) fn crash(&mut self) -> Vec<CrashEffect> {
        self.generation += 1;
        self.names = self.durable_names.clone();
        self.unsynced_names.clear();
        let mut survivors = BTreeMap::new();
        let mut effects = Vec::new();
        for (name, id) in &self.durable_names {
            let Some(file) = self.files.get(id) else { continue };
            let (image, tear) = crash_image(&file.durable, &file.current, self.block_size, &mut self.rng);
            let pending_bytes = file.current.len().saturating_sub(file.durable.len()) as u64;
            effects.push(CrashEffect {
                path: name.path().to_path_buf(),
                pending_bytes,
                len_after: image.len() as u64,
                tear: tear.name(),
            });
            survivors.insert(*id, FileData { current: image.clone(), durable: image });
        }
        self.files = survivors;
        // Handles from before the crash are stale; their drops must not count.
        self.open_handles.clear();
        effects
    }

    /// The file currently named `path`, if any.
    pub(super) fn named(&mut self, path: &Path) -> Option<&mut FileData> {
        let id = self.id_of(path)?;
        self.files.get_mut(&id)
    }
}
