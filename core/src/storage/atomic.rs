//! Whole-file helpers on top of the seam: atomic replace and read-if-present.

use std::path::{Path, PathBuf};

use super::{OpenMode, Storage, StorageError, StorageFile, parent_dir};

/// The temporary sibling [`write_atomic`] writes before renaming.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces the contents of `path` with `bytes` so that a crash at any point leaves
/// either the old or the new contents, never a mix: write `path.tmp`, fsync it,
/// rename over `path`, fsync the directory.
pub async fn write_atomic<S: Storage>(storage: &S, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let temp = temp_path(path);
    match storage.remove(&temp).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => {}
        Err(error) => return Err(error),
    }
    let mut file = storage.open(&temp, OpenMode::Create).await?;
    file.append(bytes).await?;
    file.sync().await?;
    drop(file);
    storage.rename(&temp, path).await?;
    storage.sync_dir(&parent_dir(path)).await
}

/// The whole contents of `path`, or `None` if it does not exist. A file longer than
/// `limit_bytes` is refused rather than read into memory.
pub async fn read_if_exists<S: Storage>(
    storage: &S,
    path: &Path,
    limit_bytes: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let mut file = match storage.open(path, OpenMode::Existing).await {
        Ok(file) => file,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    let len = file.len().await?;
    let too_large = || StorageError::TooLarge { path: path.to_path_buf(), len, limit_bytes };
    if len > limit_bytes {
        return Err(too_large());
    }
    let len = usize::try_from(len).map_err(|_| too_large())?;
    file.read(0, len).await.map(Some)
}
