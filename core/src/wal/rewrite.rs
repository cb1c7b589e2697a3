//! Rewriting a whole log atomically (compaction, restore).

use std::path::Path;

use crate::storage::{Storage, write_atomic};

use super::config::WalConfig;
use super::error::PersistenceError;
use super::frame::{FILE_HEADER_LEN, FRAME_HEADER_LEN, encode_frame, file_header};

/// Replaces the log at `path` with one holding exactly `records`, through a temporary
/// file and a rename: a crash leaves the old log or the new one, never a mix. Open
/// handles on the old log must be dropped first; reopen with [`super::Wal::open`].
pub async fn rewrite<S: Storage, P: AsRef<[u8]>>(
    storage: &S,
    path: &Path,
    records: &[P],
    config: &WalConfig,
) -> Result<(), PersistenceError> {
    let bytes = encode_log(path, records, config)?;
    write_atomic(storage, path, &bytes).await.map_err(PersistenceError::storage(path))
}

/// A complete log (header and frames) for `records`, checked against `config`'s bounds.
pub fn encode_log<P: AsRef<[u8]>>(path: &Path, records: &[P], config: &WalConfig) -> Result<Vec<u8>, PersistenceError> {
    let limit = config.max_record_bytes;
    let mut total = FILE_HEADER_LEN as u64;
    for record in records {
        let len = record.as_ref().len() as u64;
        if len > u64::from(limit) {
            return Err(PersistenceError::RecordTooLarge { path: path.to_path_buf(), len, limit });
        }
        total += FRAME_HEADER_LEN as u64 + len;
    }
    if total > config.max_log_bytes {
        return Err(PersistenceError::LogTooLarge {
            path: path.to_path_buf(),
            len: total,
            limit: config.max_log_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    bytes.extend_from_slice(&file_header());
    for record in records {
        encode_frame(record.as_ref(), &mut bytes);
    }
    Ok(bytes)
}
