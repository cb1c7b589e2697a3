//! Group commit at the bounds, for `wal-soak`: a second log on Tamiyo's disk.
//!
//! The field-report store appends one record per fsync and never nears a bound,
//! so on its own the soak leaves three promises of the WAL unwatched: that group
//! commit shares fsyncs among concurrent appenders and answers each with the
//! index its record really got; that every bound admits exactly its limit (a
//! record of `max_record_bytes`, a batch of `max_batch_records`, a log of
//! `max_log_bytes`, when appended, opened and rewritten) and refuses one more with
//! a typed error that changes nothing ([`check_bounds`], [`check_full`]); and that
//! an open log's count of records and bytes matches its file. Each start of the
//! store, the host runs one round here: open `batches.log` and check it against
//! every acknowledged index; if it is full, check the refusal, restore it from its
//! own records (a rewrite exactly at the bound) and compact it to its newest
//! records; every third round, flip a bit mid-log with a torn record at the end
//! ([`rot`]): what is set aside must be counted right; then [`APPENDERS`] tasks
//! append one record each, all queued before the committer runs. Power losses and
//! fsync errors strike here as in the rest of the soak.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use esper_core::planted::Planted;
use esper_core::storage::{OpenMode, Storage as _, StorageFile as _};
use esper_core::wal::frame::{FILE_HEADER_LEN, FRAME_HEADER_LEN, encode_frame};
use esper_core::wal::group_commit::group_commit;
use esper_core::wal::rewrite::rewrite;
use esper_core::wal::{PersistenceError, Wal, WalConfig};
use esper_sim::SimDisk;
use rand::Rng;

/// The log, beside the field reports.
const BATCH_LOG: &str = "var/tamiyo/batches.log";
/// Every record is exactly the record bound.
const RECORD_BYTES: u32 = 64;
/// The batch bound: a round's appenders make one full batch and a partial one.
const BATCH_LIMIT: usize = 4;
/// Concurrent appenders per round.
const APPENDERS: usize = 6;
/// Records the log bound holds exactly: two rounds.
const CAPACITY: usize = 2 * APPENDERS;
/// Every this many rounds, the round begins with [`rot`].
const ROT_EVERY: u64 = 3;
/// fsyncs a round of [`APPENDERS`] must take: one per batch of [`BATCH_LIMIT`].
const ROUND_FSYNCS: u64 = APPENDERS.div_ceil(BATCH_LIMIT) as u64;

/// The log's configuration: non-strict, every bound small enough to reach.
fn config() -> WalConfig {
    let frame = (FRAME_HEADER_LEN + RECORD_BYTES as usize) as u64;
    WalConfig {
        strict: false,
        max_record_bytes: RECORD_BYTES,
        max_log_bytes: FILE_HEADER_LEN as u64 + CAPACITY as u64 * frame,
        max_batch_records: BATCH_LIMIT,
        planted: Planted::NONE,
    }
}

/// What the rounds promised, kept across the host's crashes.
#[derive(Debug, Default)]
pub struct BatchLedger {
    /// Acknowledged records by the index group commit answered: the log must
    /// hold each at its index.
    acked: BTreeMap<u64, Vec<u8>>,
    /// A rewrite that may or may not have landed: the log holds its records or
    /// the acknowledged ones.
    rewriting: Option<Vec<Vec<u8>>>,
    /// Records handed to group commit so far (their serials are `0..sent`).
    sent: u64,
    /// Rounds that appended.
    rounds: u64,
}

/// The ledger, shared by the host's boots and its appender tasks.
pub type SharedBatches = Arc<Mutex<BatchLedger>>;

fn lock(ledger: &SharedBatches) -> MutexGuard<'_, BatchLedger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Record `serial`: its number, padded to exactly [`RECORD_BYTES`].
fn record(serial: u64) -> Vec<u8> {
    let mut bytes = format!("batch-{serial:010}").into_bytes();
    bytes.resize(RECORD_BYTES as usize, b'.');
    bytes
}

/// The serial of a record this soak wrote, if it is one.
fn serial(bytes: &[u8]) -> Option<u64> {
    let serial = std::str::from_utf8(bytes.get(6..16)?).ok()?.parse().ok()?;
    (record(serial) == bytes).then_some(serial)
}

/// One round. `Err` is a broken promise; a storage error (an injected EIO) only
/// ends the round early.
pub async fn round(disk: &SimDisk, ledger: &SharedBatches, draws: &mut impl Rng) -> Result<(), String> {
    let Some(mut wal) = open_checked(disk, ledger).await? else { return Ok(()) };
    let held = wal.records() as usize;
    if held + APPENDERS > CAPACITY {
        if held == CAPACITY {
            check_full(disk, &mut wal).await?;
        }
        drop(wal);
        let Some(compacted) = compact(disk, ledger).await? else { return Ok(()) };
        wal = compacted;
    }
    // (Compacted, the log has room for the torn record.)
    if wal.records() >= 2 && lock(ledger).rounds % ROT_EVERY == ROT_EVERY - 1 {
        drop(wal);
        let Some(rotted) = rot(disk, ledger, draws).await? else { return Ok(()) };
        wal = rotted;
    }
    check_bounds(disk, &mut wal).await?;
    let first = wal.records();
    let (writer, committer) = group_commit(wal, APPENDERS);
    let mut appenders = Vec::with_capacity(APPENDERS);
    for _ in 0..APPENDERS {
        let payload = {
            let mut ledger = lock(ledger);
            ledger.sent += 1;
            record(ledger.sent - 1)
        };
        let (writer, ledger) = (writer.clone(), Arc::clone(ledger));
        appenders.push(tokio::spawn(async move {
            let answer = writer.append(payload.clone()).await;
            if let Ok(index) = answer {
                lock(&ledger).acked.insert(index, payload);
            }
            answer
        }));
    }
    drop(writer);
    // Every appender queues its record before the committer takes the first batch.
    tokio::task::yield_now().await;
    let fsyncs = disk.fsync_count();
    let wal = committer.run().await;
    let fsyncs = disk.fsync_count() - fsyncs;
    let mut indices = Vec::with_capacity(APPENDERS);
    for appender in appenders {
        match appender.await.map_err(|error| format!("an appender task failed: {error}"))? {
            Ok(index) => indices.push(index),
            Err(PersistenceError::Storage { .. } | PersistenceError::Poisoned { .. }) => {}
            Err(error) => return Err(format!("group commit refused an append within every bound: {error}")),
        }
    }
    lock(ledger).rounds += 1;
    if indices.len() < APPENDERS {
        return Ok(()); // An fsync failed: the next open says what is on disk.
    }
    let expected: Vec<u64> = (first..first + APPENDERS as u64).collect();
    if indices != expected {
        return Err(format!("group commit answered indices {indices:?} to appends queued as {expected:?}"));
    }
    if fsyncs != ROUND_FSYNCS {
        return Err(format!(
            "{APPENDERS} queued appends took {fsyncs} fsyncs; batches of at most {BATCH_LIMIT} take {ROUND_FSYNCS}"
        ));
    }
    check_accounting(disk, &wal, first + APPENDERS as u64)
}

/// Opens the log and checks it against the ledger; the log as recovered (and made
/// durable by the open) is what later rounds build on. `None` on a storage error.
async fn open_checked(disk: &SimDisk, ledger: &SharedBatches) -> Result<Option<Wal<SimDisk>>, String> {
    let path = Path::new(BATCH_LOG);
    let (wal, recovery) = match Wal::open(disk, path, config()).await {
        Ok(opened) => opened,
        Err(PersistenceError::Storage { .. }) => return Ok(None),
        Err(error) => return Err(format!("{BATCH_LOG} could not be opened: {error}")),
    };
    let records: Vec<Vec<u8>> = recovery.records().map(<[u8]>::to_vec).collect();
    let mut ledger = lock(ledger);
    if let Some(rewritten) = ledger.rewriting.take()
        && rewritten == records
    {
        ledger.acked = indexed(&rewritten);
    }
    for (index, payload) in &ledger.acked {
        if records.get(*index as usize) != Some(payload) {
            return Err(format!(
                "{BATCH_LOG}: acknowledged record {} at index {index} is not there on reopening ({} records)",
                String::from_utf8_lossy(payload),
                records.len()
            ));
        }
    }
    if let Some(stranger) = records.iter().find(|bytes| serial(bytes).is_none_or(|serial| serial >= ledger.sent)) {
        return Err(format!("{BATCH_LOG} holds {}, which was never appended", String::from_utf8_lossy(stranger)));
    }
    ledger.acked = indexed(&records);
    drop(ledger);
    check_accounting(disk, &wal, records.len() as u64)?;
    Ok(Some(wal))
}

/// Flips a drawn bit in a drawn record with whole records behind it, tears a
/// record onto the end (its frame header and part of its payload, as a crash
/// mid-append leaves), and reopens: the log must be cut at the flipped record,
/// and the tail set aside counted as the flipped record and the whole ones
/// behind it, not the torn one (every record is exactly the record bound, so a
/// walk that stopped at the bound would count one). `None` on a storage error.
async fn rot(disk: &SimDisk, ledger: &SharedBatches, draws: &mut impl Rng) -> Result<Option<Wal<SimDisk>>, String> {
    let path = Path::new(BATCH_LOG);
    let frame = FRAME_HEADER_LEN + RECORD_BYTES as usize;
    let (hit, cut, torn) = {
        let mut ledger = lock(ledger);
        let held = ledger.acked.len() as u64;
        let hit = draws.random_range(0..held - 1);
        // The flipped record and those behind it are set aside, no longer promised.
        ledger.acked.retain(|index, _| *index < hit);
        ledger.sent += 1;
        (hit, held - hit, record(ledger.sent - 1))
    };
    let start = (FILE_HEADER_LEN + hit as usize * frame) as u64;
    if !disk.flip_bit(path, start + draws.random_range(0..frame as u64), draws.random_range(0..8)) {
        return Err(format!("{BATCH_LOG} has no record {hit} to flip"));
    }
    let mut torn_frame = Vec::with_capacity(frame);
    encode_frame(&torn, &mut torn_frame);
    torn_frame.truncate(FRAME_HEADER_LEN + draws.random_range(1..RECORD_BYTES as usize));
    let appended = async {
        let mut file = disk.open(path, OpenMode::Existing).await?;
        file.append(&torn_frame).await?;
        file.sync().await
    };
    if appended.await.is_err() {
        return Ok(None); // An injected EIO: the next round reopens what is there.
    }
    let tail = disk.contents(path).map_or(0, |bytes| bytes.len() as u64) - start;
    let (wal, recovery) = match Wal::open(disk, path, config()).await {
        Ok(opened) => opened,
        Err(PersistenceError::Storage { .. }) => return Ok(None),
        Err(error) => return Err(format!("{BATCH_LOG} with a flipped record could not be opened: {error}")),
    };
    let aside = recovery.set_aside.as_ref().map(|aside| (aside.records, aside.bytes));
    let damage = recovery.damage.map(|damage| damage.offset);
    if aside != Some((cut, tail)) || damage != Some(start) || recovery.records().len() as u64 != hit {
        return Err(format!(
            "{BATCH_LOG}: a bit flipped in record {hit} (byte {start}) with {} whole records behind it and a torn one \
             at the end: damage found at {damage:?}, {} records kept, (records, bytes) set aside {aside:?}; expected \
             {start}, {hit}, ({cut}, {tail})",
            cut - 1,
            recovery.records().len()
        ));
    }
    drop(recovery);
    check_accounting(disk, &wal, hit)?;
    Ok(Some(wal))
}

/// A full log: one more record is refused as too large, and the file is unchanged.
async fn check_full(disk: &SimDisk, wal: &mut Wal<SimDisk>) -> Result<(), String> {
    let path = Path::new(BATCH_LOG);
    let before = disk.contents(path);
    let limit = config().max_log_bytes;
    let len = limit + (FRAME_HEADER_LEN + RECORD_BYTES as usize) as u64;
    let refusal = PersistenceError::LogTooLarge { path: path.to_path_buf(), len, limit };
    match wal.append(&record(u64::MAX)).await {
        Err(error) if error == refusal => {}
        other => return Err(format!("appending to a full {BATCH_LOG} gave {other:?}, expected {refusal}")),
    }
    if disk.contents(path) != before {
        return Err(format!("the refused append changed {BATCH_LOG}"));
    }
    Ok(())
}

/// One past each append bound — an empty batch, a batch of one record too many, a
/// record one byte too long — is refused with its typed error, and nothing is
/// written.
async fn check_bounds(disk: &SimDisk, wal: &mut Wal<SimDisk>) -> Result<(), String> {
    let path = Path::new(BATCH_LOG).to_path_buf();
    let before = disk.contents(&path);
    let too_many = vec![record(u64::MAX); BATCH_LIMIT + 1];
    let too_long = vec![b'.'; RECORD_BYTES as usize + 1];
    let bad_batch = |len| PersistenceError::BadBatch { path: path.clone(), len, limit: BATCH_LIMIT };
    let attempts = [
        (wal.append_batch::<Vec<u8>>(&[]).await.map(|range| range.start), bad_batch(0)),
        (wal.append_batch(&too_many).await.map(|range| range.start), bad_batch(BATCH_LIMIT + 1)),
        (
            wal.append(&too_long).await,
            PersistenceError::RecordTooLarge { path: path.clone(), len: too_long.len() as u64, limit: RECORD_BYTES },
        ),
    ];
    for (outcome, refusal) in attempts {
        if outcome.as_ref().err() != Some(&refusal) {
            return Err(format!("{BATCH_LOG}: an append past a bound gave {outcome:?}, expected {refusal}"));
        }
    }
    if disk.contents(&path) != before {
        return Err(format!("appends refused at the bounds changed {BATCH_LOG}"));
    }
    Ok(())
}

/// Restores the log from its own records (exactly at the log bound when it is
/// full), then compacts it to its newest [`APPENDERS`] records and reopens it. `None` on a
/// storage error.
async fn compact(disk: &SimDisk, ledger: &SharedBatches) -> Result<Option<Wal<SimDisk>>, String> {
    let path = Path::new(BATCH_LOG);
    let records: Vec<Vec<u8>> = lock(ledger).acked.values().cloned().collect();
    let newest = records[records.len().saturating_sub(APPENDERS)..].to_vec();
    for kept in [records, newest] {
        lock(ledger).rewriting = Some(kept.clone());
        match rewrite(disk, path, &kept, &config()).await {
            Ok(()) => {}
            Err(PersistenceError::Storage { .. }) => return Ok(None),
            Err(error) => return Err(format!("rewriting {BATCH_LOG} with {} records failed: {error}", kept.len())),
        }
        let mut ledger = lock(ledger);
        ledger.acked = indexed(&kept);
        ledger.rewriting = None;
    }
    open_checked(disk, ledger).await
}

/// The open log's own count of records and bytes against the file.
fn check_accounting(disk: &SimDisk, wal: &Wal<SimDisk>, records: u64) -> Result<(), String> {
    let file_len = disk.contents(wal.path()).map_or(0, |bytes| bytes.len() as u64);
    if wal.records() != records || wal.len_bytes() != file_len {
        return Err(format!(
            "{BATCH_LOG} counts {} records and {} bytes; it holds {records} records and {file_len} bytes",
            wal.records(),
            wal.len_bytes()
        ));
    }
    Ok(())
}

fn indexed(records: &[Vec<u8>]) -> BTreeMap<u64, Vec<u8>> {
    records.iter().enumerate().map(|(index, payload)| (index as u64, payload.clone())).collect()
}
