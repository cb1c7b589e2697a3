//! Bit rot at rest, for `wal-soak`: one flipped bit in an acknowledged record.
//!
//! The torn records and power losses of the soak only ever damage a log's last
//! record. Rot can strike any record: a flipped bit anywhere in its frame —
//! length, checksum or payload. Non-strict recovery must then keep the records
//! before it, cut the rest from the log, and, when whole records lie behind the
//! damaged one, keep the cut tail byte for byte in `<log>.damaged-<offset>`
//! (under a fresh name if that one is taken): acknowledged data is set aside,
//! never destroyed. The soak flips the bit itself, so it knows exactly which
//! frame it hit and what the next open must show; the files it expects are
//! checked again at the end of the run, so no later recovery may remove them.

use std::path::{Path, PathBuf};

use esper_core::leyline::FieldReport;
use esper_core::storage::{OpenMode, Storage, StorageError, StorageFile};
use esper_core::tamiyo::field_reports::FieldReportStore;
use esper_core::wal::frame::FRAME_HEADER_LEN;
use esper_core::wal::{WalConfig, inspect};
use esper_sim::SimDisk;
use prost::Message;
use rand::Rng;

/// What one flip must leave after the next open of the store.
#[derive(Debug, Clone)]
pub struct Rot {
    /// Where the hit record's frame starts: the log is cut there.
    pub frame_offset: u64,
    /// The log's bytes from there to its end, after the flip.
    pub tail: Vec<u8>,
    /// The first free `<log>.damaged-<offset>` name when the bit flipped: it must
    /// hold `tail` if whole records lay behind the hit one, and not exist otherwise.
    pub aside: PathBuf,
    /// Whether whole records lay behind the hit one.
    pub records_behind: bool,
    /// Records from the hit one to the end of the log's valid prefix: what the
    /// store must count as set aside.
    pub set_aside_records: u64,
    /// The ids of the reports cut from the log: the hit one and every later one.
    pub cut: Vec<String>,
}

/// Flips a drawn bit of a drawn record of the closed log at `log` (non-strict);
/// `None` when the log holds no record.
pub async fn flip_record(disk: &SimDisk, log: &Path, draws: &mut impl Rng) -> Result<Option<Rot>, String> {
    let recovery = inspect(disk, log, &WalConfig::with_strict(false)).await.map_err(|e| e.to_string())?;
    let frames: Vec<(u64, &[u8])> = recovery.records_with_offsets().collect();
    if frames.is_empty() {
        return Ok(None);
    }
    let hit = draws.random_range(0..frames.len());
    let (frame_offset, payload) = frames[hit];
    let offset = frame_offset + draws.random_range(0..(FRAME_HEADER_LEN + payload.len()) as u64);
    let aside = free_damaged_path(disk, log, frame_offset).await?;
    if !disk.flip_bit(log, offset, draws.random_range(0..8)) {
        return Err(format!("byte {offset} of {} is not there to flip", log.display()));
    }
    let bytes = read(disk, log).await.map_err(|e| e.to_string())?.unwrap_or_default();
    let tail = bytes.get(usize::try_from(frame_offset).unwrap_or(usize::MAX)..).unwrap_or_default().to_vec();
    let cut = frames[hit..].iter().filter_map(|(_, record)| FieldReport::decode(*record).ok()).map(|r| r.report_id);
    let (records_behind, set_aside_records) = (hit + 1 < frames.len(), (frames.len() - hit) as u64);
    Ok(Some(Rot { frame_offset, tail, aside, records_behind, set_aside_records, cut: cut.collect() }))
}

/// Checks the first store opened after `rot`: damage found at the hit frame and
/// the whole tail cut, none of the cut reports still in the store, the tail set
/// aside exactly when it held whole records. (An open that failed after cutting
/// the tail — an fsync EIO — leaves the next one no damage to find, only a log
/// that ends where the hit frame began.)
pub async fn check_open(
    disk: &SimDisk,
    log: &Path,
    store: &FieldReportStore<SimDisk>,
    rot: &Rot,
) -> Result<(), String> {
    let tail_len = rot.tail.len() as u64;
    let log_len = read(disk, log).await.map_err(|e| e.to_string())?.map_or(0, |bytes| bytes.len() as u64);
    match store.damage() {
        Some(damage) if damage.offset == rot.frame_offset && damage.dropped_bytes == tail_len => {}
        None if log_len == rot.frame_offset => {}
        other => {
            return Err(format!(
                "a bit flipped in the record at byte {}, but the reopened log reports {other:?} \
                 (expected the {tail_len} bytes from there cut)",
                rot.frame_offset
            ));
        }
    }
    if store.damage().is_some() && store.metrics().wal_truncated_bytes != tail_len {
        return Err(format!(
            "{tail_len} bytes were cut after a bit flip, but wal_truncated_bytes says {}",
            store.metrics().wal_truncated_bytes
        ));
    }
    let counted = store.metrics().wal_set_aside_records;
    let expected = if rot.records_behind { rot.set_aside_records } else { 0 };
    if store.damage().is_some() && counted != expected {
        return Err(format!(
            "{expected} records lay from the flipped one to the end of the log, set aside, \
             but wal_set_aside_records says {counted}"
        ));
    }
    if let Some(kept) = store.reports().iter().find(|report| rot.cut.contains(&report.report_id)) {
        return Err(format!(
            "{} lay at or behind the flipped record, yet the reopened log still holds it",
            kept.report_id
        ));
    }
    check_aside(disk, rot).await
}

/// Checks that `rot`'s tail is set aside, byte for byte, if it held whole records
/// (and that nothing was written in its place if it did not).
pub async fn check_aside(disk: &SimDisk, rot: &Rot) -> Result<(), String> {
    let found = read(disk, &rot.aside).await.map_err(|e| e.to_string())?;
    match (rot.records_behind, found) {
        (true, Some(bytes)) if bytes == rot.tail => Ok(()),
        (true, Some(bytes)) => Err(format!(
            "{} holds {} bytes that are not the {} bytes cut from the log",
            rot.aside.display(),
            bytes.len(),
            rot.tail.len()
        )),
        (true, None) => Err(format!(
            "whole acknowledged records lay behind the flipped one at byte {}, but {} does not exist: destroyed",
            rot.frame_offset,
            rot.aside.display()
        )),
        (false, Some(_)) => Err(format!(
            "{} was written though nothing whole lay behind the flipped (last) record",
            rot.aside.display()
        )),
        (false, None) => Ok(()),
    }
}

/// `<log>.damaged-<offset>`, or `.<n>` after it when taken: the WAL's naming,
/// re-derived (see `esper_core::wal::Wal::open`).
async fn free_damaged_path(disk: &SimDisk, log: &Path, offset: u64) -> Result<PathBuf, String> {
    let base = format!("{}.damaged-{offset}", log.display());
    for attempt in 0..1_000_u32 {
        let candidate = if attempt == 0 { PathBuf::from(&base) } else { PathBuf::from(format!("{base}.{attempt}")) };
        if read(disk, &candidate).await.map_err(|e| e.to_string())?.is_none() {
            return Ok(candidate);
        }
    }
    Err(format!("1000 damaged tails already set aside at {base}"))
}

/// The bytes of `path` on an inspection copy of `disk` (no armed fault can fail
/// the read), or `None` if there is no such file.
async fn read(disk: &SimDisk, path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let disk = disk.inspection_copy();
    let mut file = match disk.open(path, OpenMode::Existing).await {
        Ok(file) => file,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    let len = file.len().await?;
    file.read(0, usize::try_from(len).unwrap_or(usize::MAX)).await.map(Some)
}
