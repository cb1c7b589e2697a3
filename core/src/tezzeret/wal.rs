//! `forge_wal.json`: the blueprints a forge pass has still to do.
//!
//! `{"pending":["BP001",…]}` (Esper-Lite's format), replaced with
//! [`write_atomic`] so a crash leaves the old list or the new one, and removed
//! (with a directory fsync) once nothing is pending. A file that is there but is
//! not such a list is refused with a typed error rather than guessed at: the
//! operator decides whether to delete it (a fresh forge then rebuilds whatever the
//! library lacks, so nothing is lost).

use std::path::{Path, PathBuf};

use crate::storage::{Storage, StorageError, parent_dir, read_if_exists, write_atomic};

/// The WAL's file name inside the artifact directory.
pub const FORGE_WAL_FILE: &str = "forge_wal.json";
/// A WAL longer than this is refused (ids are short; catalogs hold tens).
const WAL_LIMIT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WalFile {
    pending: Vec<String>,
}

/// Why the WAL could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeWalError {
    #[error("forge WAL: {0}")]
    Storage(#[from] StorageError),
    #[error("forge WAL {path} is not a pending list ({reason}); delete it to start a fresh forge")]
    Malformed { path: PathBuf, reason: String },
}

/// The pending list, or `None` when there is no WAL (nothing to resume).
pub async fn load<S: Storage>(storage: &S, path: &Path) -> Result<Option<Vec<String>>, ForgeWalError> {
    let Some(bytes) = read_if_exists(storage, path, WAL_LIMIT_BYTES).await? else {
        return Ok(None);
    };
    let file: WalFile = serde_json::from_slice(&bytes)
        .map_err(|error| ForgeWalError::Malformed { path: path.to_path_buf(), reason: error.to_string() })?;
    Ok(Some(file.pending))
}

/// Records `pending` durably; an empty list removes the file instead.
pub async fn store<S: Storage>(storage: &S, path: &Path, pending: &[String]) -> Result<(), ForgeWalError> {
    if pending.is_empty() {
        return remove(storage, path).await;
    }
    let json = serde_json::to_vec(&WalFile { pending: pending.to_vec() })
        .map_err(|error| ForgeWalError::Malformed { path: path.to_path_buf(), reason: error.to_string() })?;
    Ok(write_atomic(storage, path, &json).await?)
}

/// Removes the WAL (if present) and makes the removal durable.
async fn remove<S: Storage>(storage: &S, path: &Path) -> Result<(), ForgeWalError> {
    match storage.remove(path).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(storage.sync_dir(&parent_dir(path)).await?)
}
