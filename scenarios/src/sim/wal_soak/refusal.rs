//! Refusals, for `wal-soak`: what must happen to a damaged log when nobody may cut it.
//!
//! The soak's store recovers non-strictly, so on its own it only ever shows the
//! cutting half of the WAL's contract. The other half is a refusal that loses
//! nothing: a strict store (Esper-Lite's `TAMIYO_WAL_STRICT_VALIDATION`) meets a
//! torn tail with a typed `Truncated` error naming the offset, and a damaged file
//! header is refused in every mode as damage (not mistaken for another format
//! version); either way the log is left byte for byte as it was and nothing is
//! set aside. A torn file header (a crash during a log's first write) is the one
//! damage at offset 0 a non-strict open repairs. An inspection (`wal::inspect`,
//! read-only, what a backup reads) reports the same damage in non-strict mode and
//! refuses it in strict mode. Each check runs on the real disk the store uses, so a
//! refusal that wrote anything would show.

use std::path::{Path, PathBuf};

use esper_core::storage::write_atomic;
use esper_core::tamiyo::field_reports::{FieldReportConfig, FieldReportStore, TamiyoPersistenceError};
use esper_core::wal::frame::{FILE_HEADER_LEN, file_header};
use esper_core::wal::{Damage, DamageReason, PersistenceError, Wal, WalConfig, inspect};
use esper_sim::SimDisk;
use rand::Rng;

/// The scratch log [`check_torn_header`] tears, in the store's directory.
const TORN_HEADER_LOG: &str = "torn-header.log";

/// The damage a check expects the log to be refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    damage: Damage,
    /// A torn tail: refused as `Truncated`, and only in strict mode; a damaged
    /// header is refused as `Corrupt` in every mode.
    torn: bool,
}

impl Expected {
    /// The typed error a refusal must be, spelled out here rather than asked of
    /// the WAL, so that a WAL that names its damage wrongly is caught.
    fn refusal(self, log: &Path) -> PersistenceError {
        let Damage { offset, reason, dropped_bytes } = self.damage;
        let path = log.to_path_buf();
        if self.torn {
            PersistenceError::Truncated { path, offset, reason, dropped_bytes }
        } else {
            PersistenceError::Corrupt { path, offset, reason, dropped_bytes }
        }
    }
}

/// After a torn record was appended to the closed log at `config.log_path()`:
/// a strict store and a strict inspection refuse it as truncated at the torn
/// frame, a non-strict inspection reports that damage, and the file is unchanged.
pub async fn check_torn_tail(disk: &SimDisk, config: &FieldReportConfig, torn_len: u64) -> Result<(), String> {
    let log = config.log_path();
    let len = contents(disk, &log)?.len() as u64;
    let damage = Damage { offset: len - torn_len, reason: DamageReason::TornFrameHeader, dropped_bytes: torn_len };
    check(disk, config, Expected { damage, torn: true }).await
}

/// Flips a drawn bit of the closed log's file header, checks that every mode
/// refuses the log as a damaged header and changes nothing, then flips the bit
/// back (the operator's repair) so the soak goes on.
pub async fn check_damaged_header(
    disk: &SimDisk,
    config: &FieldReportConfig,
    draws: &mut impl Rng,
) -> Result<(), String> {
    let log = config.log_path();
    let len = contents(disk, &log)?.len() as u64;
    let (offset, bit) = (draws.random_range(0..FILE_HEADER_LEN as u64), draws.random_range(0..8));
    if !disk.flip_bit(&log, offset, bit) {
        return Err(format!("byte {offset} of {} is not there to flip", log.display()));
    }
    let damage = Damage { offset: 0, reason: DamageReason::BadFileHeader, dropped_bytes: len };
    let checked = check(disk, config, Expected { damage, torn: false })
        .await
        .map_err(|detail| format!("bit {bit} of header byte {offset} flipped: {detail}"));
    disk.flip_bit(&log, offset, bit);
    checked
}

/// A log whose file header was torn (a crash while the first open wrote it: the
/// soak writes the first `1..16` bytes of a header to a scratch log): strict
/// inspection refuses it as truncated at 0; a non-strict open cuts the torn header
/// away and writes a whole one, so the file is then exactly a header.
pub async fn check_torn_header(disk: &SimDisk, dir: &Path, draws: &mut impl Rng) -> Result<(), String> {
    let log = dir.join(TORN_HEADER_LOG);
    let torn = &file_header()[..draws.random_range(1..FILE_HEADER_LEN)];
    if write_atomic(disk, &log, torn).await.is_err() {
        return Ok(()); // An injected EIO: no torn header to look at this time.
    }
    let damage = Damage { offset: 0, reason: DamageReason::TornFileHeader, dropped_bytes: torn.len() as u64 };
    let refusal = Expected { damage, torn: true }.refusal(&log);
    match inspect(disk, &log, &WalConfig::with_strict(true)).await {
        Err(error) if error == refusal => {}
        other => return Err(format!("a torn file header: strict inspect gave {other:?}, expected {refusal}")),
    }
    match Wal::open(disk, &log, WalConfig::with_strict(false)).await {
        Ok((_, recovery)) if recovery.damage == Some(damage) && recovery.records().len() == 0 => {}
        Ok((_, recovery)) => {
            return Err(format!(
                "a torn file header: the non-strict open found {:?} and {} records, expected {damage:?} and none",
                recovery.damage,
                recovery.records().len()
            ));
        }
        Err(PersistenceError::Storage { .. }) => return Ok(()),
        Err(error) => return Err(format!("a torn file header: the non-strict open refused it: {error}")),
    }
    match disk.contents(&log) {
        Some(bytes) if bytes == file_header() => Ok(()),
        other => Err(format!("a torn file header recovered to {other:?}, not to exactly a header")),
    }
}

/// Opens and inspects the log in both modes and compares each outcome with
/// `expected`; then compares the file with its bytes before.
async fn check(disk: &SimDisk, config: &FieldReportConfig, expected: Expected) -> Result<(), String> {
    let log = config.log_path();
    let before = contents(disk, &log)?;
    let aside = PathBuf::from(format!("{}.damaged-{}", log.display(), expected.damage.offset));
    let aside_before = disk.contents(&aside);
    let refusal = expected.refusal(&log);
    for strict in [true, false] {
        let wal = WalConfig::with_strict(strict);
        let inspected = inspect(disk, &log, &wal).await.map(|recovery| recovery.damage);
        let expected_inspection = if strict { Err(refusal.clone()) } else { Ok(Some(expected.damage)) };
        if inspected != expected_inspection {
            return Err(format!("inspect (strict {strict}) gave {inspected:?}, expected {expected_inspection:?}"));
        }
        if !strict && expected.torn {
            continue; // A non-strict store rightly cuts a torn tail: the soak's own open does that.
        }
        match FieldReportStore::open(disk.clone(), FieldReportConfig { wal, ..config.clone() }, 0).await {
            Err(TamiyoPersistenceError::Wal(error)) if error == refusal => check_message(&error, expected.damage)?,
            Err(error) => return Err(format!("a store (strict {strict}) refused it with {error}, expected {refusal}")),
            Ok(_) => return Err(format!("a store (strict {strict}) opened it, expected {refusal}")),
        }
    }
    let after = contents(disk, &log)?;
    if after != before {
        return Err(format!("refusing the log changed it: {} bytes before, {} after", before.len(), after.len()));
    }
    if disk.contents(&aside) != aside_before {
        return Err(format!("refusing the log wrote {}", aside.display()));
    }
    Ok(())
}

/// The refusal an operator reads names the offset and says what is wrong there
/// in words (the words spelled out here, not asked of the WAL).
fn check_message(error: &PersistenceError, damage: Damage) -> Result<(), String> {
    let words = match damage.reason {
        DamageReason::TornFrameHeader => "the file ends inside a record's length and checksum",
        DamageReason::BadFileHeader => "the log header's magic or checksum is wrong",
        other => return Err(format!("no expected wording for {other:?}")),
    };
    let message = error.to_string();
    if message.contains(words) && message.contains(&format!("offset {}", damage.offset)) {
        Ok(())
    } else {
        Err(format!("the refusal reads {message:?}: it should name offset {} and say {words:?}", damage.offset))
    }
}

/// The log's bytes as a reader sees them now.
fn contents(disk: &SimDisk, log: &Path) -> Result<Vec<u8>, String> {
    disk.contents(log).ok_or_else(|| format!("{} does not exist", log.display()))
}
