//! Checkpoints on a [`Storage`]: one framed-WAL file holding the latest checkpoint.
//!
//! Each save rewrites `tolaria/checkpoint.wal` atomically (temp file, fsync, rename,
//! directory fsync) with a single CRC-framed record, so a crash leaves the previous
//! checkpoint or the new one, and a damaged file is refused (strict) instead of
//! restoring garbage into the model. The original kept `ckpt-epoch-N.pt` files plus a
//! `wal.json` pointer with CRCs; one framed file gives the same guarantees.

use std::path::{Path, PathBuf};

use super::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::storage::{Storage, StorageError, parent_dir};
use crate::wal::rewrite::rewrite;
use crate::wal::{PersistenceError, WalConfig, inspect};

/// Default location under the storage root.
pub const CHECKPOINT_PATH: &str = "tolaria/checkpoint.wal";

/// See the module docs.
#[derive(Debug, Clone)]
pub struct StorageCheckpoints<S: Storage> {
    storage: S,
    path: PathBuf,
    config: WalConfig,
}

impl<S: Storage> StorageCheckpoints<S> {
    /// Checkpoints at `path` on `storage`; strict: a damaged checkpoint is an error.
    pub fn new(storage: S, path: impl AsRef<Path>) -> Self {
        Self { storage, path: path.as_ref().to_path_buf(), config: WalConfig::with_strict(true) }
    }

    fn failed(&self, error: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Storage(format!("{}: {error}", self.path.display()))
    }
}

impl<S: Storage> CheckpointStore for StorageCheckpoints<S> {
    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let dir = parent_dir(&self.path);
        self.storage.create_dir_all(&dir).await.map_err(|e| self.failed(e))?;
        rewrite(&self.storage, &self.path, &[checkpoint.encode()?], &self.config).await.map_err(|e| self.failed(e))
    }

    async fn load_latest(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        let recovery = match inspect(&self.storage, &self.path, &self.config).await {
            Ok(recovery) => recovery,
            Err(PersistenceError::Storage { source: StorageError::NotFound { .. }, .. }) => return Ok(None),
            Err(error) => return Err(self.failed(error)),
        };
        recovery.records().last().map(Checkpoint::decode).transpose()
    }
}
