//! `Wal`: one open log — recovery on open, batched appends, one fsync per batch.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crate::planted::PlantedBug;
use crate::storage::{OpenMode, Storage, StorageError, StorageFile, parent_dir, write_atomic};

use super::config::WalConfig;
use super::error::PersistenceError;
use super::frame::{FILE_HEADER_LEN, FORMAT_VERSION, FRAME_HEADER_LEN, encode_frame, file_header};
use super::recovery::{Recovery, SetAside};
use super::scan::{Damage, DamageReason, Scan, framed_records, intact_frame_behind, scan};

/// An open write-ahead log. Appends go in batches: all of a batch's frames in one
/// write, then one fsync; a batch is acknowledged (the call returns `Ok`) only after
/// its fsync. See [`super::group_commit`] for batching across tasks.
#[derive(Debug)]
pub struct Wal<S: Storage> {
    file: S::File,
    path: PathBuf,
    config: WalConfig,
    /// Length of the log as written and synced by us.
    len: u64,
    /// Records in the log.
    records: u64,
    /// Set by a failed write or fsync: what is on disk is unknown until reopened.
    poisoned: bool,
    storage: PhantomData<S>,
}

impl<S: Storage> Wal<S> {
    /// Opens (creating if missing) the log at `path` and recovers it: the longest valid
    /// prefix is returned; damage past it is refused (strict) or truncated away and
    /// reported (non-strict), a corrupt tail first set aside in
    /// `<log>.damaged-<offset>`. A damaged file header (nothing past it can be
    /// trusted to be this log) and a log of another format version are always
    /// refused, leaving the file untouched.
    pub async fn open(storage: &S, path: &Path, config: WalConfig) -> Result<(Self, Recovery), PersistenceError> {
        let io = || PersistenceError::storage(path);
        storage.create_dir_all(&parent_dir(path)).await.map_err(io())?;
        let mut file = storage.open(path, OpenMode::Create).await.map_err(io())?;
        let (bytes, frames, valid_len, damage) = load(&mut file, path, &config).await?;
        let mut set_aside = None;
        if let Some(damage) = damage {
            if config.strict || damage.reason == DamageReason::BadFileHeader {
                return Err(PersistenceError::from_damage(path.to_path_buf(), damage));
            }
            let tail = usize::try_from(damage.offset).ok().and_then(|offset| bytes.get(offset..)).unwrap_or_default();
            if let Some(intact) = intact_frame_behind(tail, config.max_record_bytes) {
                // The damaged record, then the ones walked from the first intact frame.
                let records = 1 + framed_records(&tail[intact..], config.max_record_bytes);
                set_aside = Some(set_aside_tail(storage, path, tail, damage, records).await?);
            }
            cut_damage(&mut file, path, damage).await?;
        }
        let mut wal = Self {
            file,
            path: path.to_path_buf(),
            config,
            len: valid_len,
            records: frames.len() as u64,
            poisoned: false,
            storage: PhantomData,
        };
        if valid_len == 0 {
            wal.write_header().await?;
        }
        wal.make_durable(storage).await?;
        tracing::info!(target: super::LOG_TARGET, path = %path.display(), records = wal.records, len = wal.len, "log recovered");
        let mut recovery = Recovery::new(bytes, frames, damage);
        recovery.set_aside = set_aside;
        Ok((wal, recovery))
    }

    /// A fresh (or wholly damaged) log: write the header.
    async fn write_header(&mut self) -> Result<(), PersistenceError> {
        self.file.append(&file_header()).await.map_err(PersistenceError::storage(&self.path))?;
        self.len = FILE_HEADER_LEN as u64;
        Ok(())
    }

    /// Makes the recovered log and the file's existence durable, on every open and
    /// not only when the file is new: an earlier open may have created the file
    /// and failed before its fsyncs (an EIO), and a retry that then found the file
    /// would otherwise acknowledge records in a file a crash can still unlink.
    /// (Found by the control-loop drill: EIO on the first fsync, a retried open,
    /// a crash three seconds later — 298 acknowledged field reports gone.)
    async fn make_durable(&mut self, storage: &S) -> Result<(), PersistenceError> {
        let io = || PersistenceError::storage(&self.path);
        self.file.sync().await.map_err(io())?;
        storage.sync_dir(&parent_dir(&self.path)).await.map_err(io())
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's configuration.
    pub fn config(&self) -> &WalConfig {
        &self.config
    }

    /// Whether a failed write or fsync has left the file's contents unknown: every
    /// append is refused until the log is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Records in the log (recovered plus appended).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes in the log.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// Appends one record and fsyncs: a batch of one.
    pub async fn append(&mut self, payload: &[u8]) -> Result<u64, PersistenceError> {
        Ok(self.append_batch(&[payload]).await?.start)
    }

    /// Appends `payloads` in one write and one fsync. Returns the index range the
    /// records got (index = position in the log, 0-based). Nothing is written unless
    /// every bound holds.
    pub async fn append_batch<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<std::ops::Range<u64>, PersistenceError> {
        let buffer = self.encode_batch(payloads)?;
        let io = || PersistenceError::storage(&self.path);
        if let Err(error) = self.file.append(&buffer).await {
            // A failed write may have left part of the batch behind; cut it off so the
            // next batch does not land after garbage. If even that fails, stop.
            self.poisoned = self.file.truncate(self.len).await.is_err();
            return Err(io()(error));
        }
        // The planted bug acknowledges the batch once it is written, unsynced.
        let synced =
            if self.config.planted.armed(PlantedBug::WalAckBeforeSync) { Ok(()) } else { self.file.sync().await };
        if let Err(error) = synced {
            // After a failed fsync the kernel may have dropped the dirty pages: the
            // file's durable contents are unknown (fsyncgate). Only a reopen can tell.
            self.poisoned = true;
            return Err(io()(error));
        }
        let first = self.records;
        self.len += buffer.len() as u64;
        self.records += payloads.len() as u64;
        Ok(first..self.records)
    }

    /// Checks every bound, then frames the batch into one buffer.
    fn encode_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<Vec<u8>, PersistenceError> {
        let path = || self.path.clone();
        if self.poisoned {
            return Err(PersistenceError::Poisoned { path: path() });
        }
        if payloads.is_empty() || payloads.len() > self.config.max_batch_records {
            return Err(PersistenceError::BadBatch {
                path: path(),
                len: payloads.len(),
                limit: self.config.max_batch_records,
            });
        }
        let limit = self.config.max_record_bytes;
        if let Some(big) = payloads.iter().map(|payload| payload.as_ref().len()).find(|len| *len > limit as usize) {
            return Err(PersistenceError::RecordTooLarge { path: path(), len: big as u64, limit });
        }
        let batch_bytes: usize = payloads.iter().map(|payload| FRAME_HEADER_LEN + payload.as_ref().len()).sum();
        let new_len = self.len + batch_bytes as u64;
        if new_len > self.config.max_log_bytes {
            return Err(PersistenceError::LogTooLarge { path: path(), len: new_len, limit: self.config.max_log_bytes });
        }
        let mut buffer = Vec::with_capacity(batch_bytes);
        for payload in payloads {
            encode_frame(payload.as_ref(), &mut buffer);
        }
        debug_assert_eq!(buffer.len(), batch_bytes);
        Ok(buffer)
    }
}

/// Reads and scans the open log: its bytes, frames, valid length and damage. Refuses
/// an oversized log and another format version; leaves the file untouched.
async fn load<F: StorageFile>(file: &mut F, path: &Path, config: &WalConfig) -> Result<Loaded, PersistenceError> {
    let io = || PersistenceError::storage(path);
    let file_len = file.len().await.map_err(io())?;
    if file_len > config.max_log_bytes {
        return Err(PersistenceError::LogTooLarge {
            path: path.to_path_buf(),
            len: file_len,
            limit: config.max_log_bytes,
        });
    }
    let bytes = file.read(0, usize::try_from(file_len).unwrap_or(usize::MAX)).await.map_err(io())?;
    match scan(&bytes, config.max_record_bytes) {
        Scan::Log { frames, valid_len, damage } => Ok((bytes, frames, valid_len, damage)),
        Scan::OtherVersion(found) => {
            Err(PersistenceError::UnsupportedVersion { path: path.to_path_buf(), found, supported: FORMAT_VERSION })
        }
    }
}

/// What [`load`] returns: bytes, payload ranges, valid length, damage.
type Loaded = (Vec<u8>, Vec<std::ops::Range<usize>>, u64, Option<Damage>);

/// Reads the log at `path` without changing it (for backups and inspection): strict
/// mode refuses damage; non-strict returns the valid prefix with the damage reported.
pub async fn inspect<S: Storage>(storage: &S, path: &Path, config: &WalConfig) -> Result<Recovery, PersistenceError> {
    let mut file = storage.open(path, OpenMode::Existing).await.map_err(PersistenceError::storage(path))?;
    let (bytes, frames, _, damage) = load(&mut file, path, config).await?;
    match damage {
        Some(damage) if config.strict => Err(PersistenceError::from_damage(path.to_path_buf(), damage)),
        _ => Ok(Recovery::new(bytes, frames, damage)),
    }
}

/// Non-strict recovery of a damaged tail with intact records behind the damage
/// (a bit flip mid-file): copy it, byte for byte, to `<log>.damaged-<offset>` (a
/// fresh name if that exists) before the log is cut. A torn or corrupt last
/// record (a crash mid-write: nothing whole behind it) is cut as before.
async fn set_aside_tail<S: Storage>(
    storage: &S,
    path: &Path,
    tail: &[u8],
    damage: Damage,
    records: u64,
) -> Result<SetAside, PersistenceError> {
    let aside = free_damaged_path(storage, path, damage.offset).await?;
    write_atomic(storage, &aside, tail).await.map_err(PersistenceError::storage(&aside))?;
    tracing::warn!(
        target: super::LOG_TARGET,
        path = %path.display(),
        set_aside = %aside.display(),
        bytes = tail.len(),
        records,
        "wal.damaged_tail_set_aside"
    );
    Ok(SetAside { path: aside, bytes: tail.len() as u64, records })
}

/// `<log>.damaged-<offset>`, or `….<n>` after it when earlier damage at the same
/// offset was already set aside (never overwritten).
async fn free_damaged_path<S: Storage>(storage: &S, path: &Path, offset: u64) -> Result<PathBuf, PersistenceError> {
    let base = format!("{}.damaged-{offset}", path.display());
    for attempt in 0..1_000_u32 {
        let candidate = if attempt == 0 { PathBuf::from(&base) } else { PathBuf::from(format!("{base}.{attempt}")) };
        match storage.open(&candidate, OpenMode::Existing).await {
            Err(StorageError::NotFound { .. }) => return Ok(candidate),
            Ok(_) => {}
            Err(error) => return Err(PersistenceError::storage(&candidate)(error)),
        }
    }
    Err(PersistenceError::storage(path)(StorageError::Io {
        path: PathBuf::from(base),
        op: crate::storage::StorageOp::Open,
        detail: "1000 damaged tails already set aside at this offset".to_owned(),
    }))
}

/// Non-strict recovery: truncate the damage away, durably, and say so.
async fn cut_damage<F: StorageFile>(file: &mut F, path: &Path, damage: Damage) -> Result<(), PersistenceError> {
    tracing::warn!(
        target: super::LOG_TARGET,
        path = %path.display(),
        offset = damage.offset,
        reason = damage.reason.name(),
        dropped_bytes = damage.dropped_bytes,
        "damaged log truncated to its valid prefix"
    );
    let io = || PersistenceError::storage(path);
    file.truncate(damage.offset).await.map_err(io())?;
    file.sync().await.map_err(io())
}
