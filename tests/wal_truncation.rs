//! Exhaustive damage tests for the WAL, on the simulated disk and on real files.
//!
//! A 1,000-record log is cut at every byte offset and has every single bit flipped in
//! turn. Recovery must return exactly the records wholly before the damage, with the
//! damaged tail set aside byte for byte; strict mode must refuse with a typed error
//! naming the file and the damaged frame's offset; a damaged file header is refused
//! in both modes and the file left byte-identical.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use esper_core::storage::{OpenMode, RealStorage, Storage, StorageFile};
use esper_core::wal::frame::{FILE_HEADER_LEN, FRAME_HEADER_LEN};
use esper_core::wal::rewrite::encode_log;
use esper_core::wal::{PersistenceError, Recovery, Wal, WalConfig};
use esper_sim::{RngTree, SimDisk, SimDiskConfig};
use support::runtime::paused;

const RECORDS: usize = 1_000;

/// Record `index`'s payload: 0 to 12 bytes (empty records included), all distinct.
fn payload(index: usize) -> Vec<u8> {
    (0..index % 13).map(|byte| (index * 31 + byte * 7) as u8).collect()
}

/// The reference log: its records, its bytes, and where each frame starts (plus the
/// end of the last one).
struct Reference {
    records: Vec<Vec<u8>>,
    bytes: Vec<u8>,
    boundaries: Vec<usize>,
}

impl Reference {
    fn new(path: &Path) -> Self {
        let records: Vec<Vec<u8>> = (0..RECORDS).map(payload).collect();
        let bytes = encode_log(path, &records, &WalConfig::default()).expect("encodes");
        let mut boundaries = vec![FILE_HEADER_LEN];
        for record in &records {
            let last = boundaries[boundaries.len() - 1];
            boundaries.push(last + FRAME_HEADER_LEN + record.len());
        }
        assert_eq!(boundaries[RECORDS], bytes.len());
        Self { records, bytes, boundaries }
    }

    /// Whether `recovery` holds exactly the first `count` records.
    fn is_prefix(&self, recovery: &Recovery, count: usize) -> bool {
        recovery.records().eq(self.records[..count].iter().map(Vec::as_slice))
    }
}

/// Replaces the contents of `path` with `bytes`, in place (no unlink and create, whose
/// journal commits would make every later fsync slow; unsynced: these tests never crash).
async fn place<S: Storage>(storage: &S, path: &Path, bytes: &[u8]) {
    let mut file = storage.open(path, OpenMode::Create).await.expect("open");
    file.truncate(0).await.expect("truncate");
    file.append(bytes).await.expect("write");
}

/// Opens the log at `path` in the given mode.
async fn recover<S: Storage>(storage: &S, path: &Path, strict: bool) -> Result<Recovery, PersistenceError> {
    Ok(Wal::open(storage, path, WalConfig::with_strict(strict)).await?.1)
}

/// The damage offset a strict open reported, checking the error names the file.
fn damage_offset(error: &PersistenceError, path: &Path) -> u64 {
    assert!(error.to_string().contains(&path.display().to_string()), "error does not name the file: {error}");
    match error {
        PersistenceError::Truncated { offset, .. } | PersistenceError::Corrupt { offset, .. } => *offset,
        other => panic!("expected Truncated or Corrupt, got {other}"),
    }
}

/// The damaged tail non-strict recovery set aside is `tail`, byte for byte; the
/// file is then removed so the next case starts clean.
async fn check_set_aside<S: Storage>(storage: &S, recovery: &Recovery, tail: &[u8], case: &str) {
    let aside = recovery.set_aside.as_ref().unwrap_or_else(|| panic!("{case}: nothing set aside"));
    let mut file = storage.open(&aside.path, OpenMode::Existing).await.expect("the set-aside file exists");
    let len = file.len().await.expect("len");
    assert_eq!(file.read(0, len as usize).await.expect("read"), tail, "{case}: the tail, byte for byte");
    assert_eq!(aside.bytes, tail.len() as u64, "{case}");
    drop(file);
    storage.remove(&aside.path).await.expect("remove the set-aside file");
}

/// Every cut: non-strict recovers the whole records before it; strict accepts a cut
/// on a frame boundary and otherwise names the boundary where the torn frame starts.
async fn check_every_truncation<S: Storage>(storage: &S, path: &Path) {
    let reference = Reference::new(path);
    let (bytes, boundaries) = (&reference.bytes, &reference.boundaries);
    for cut in 0..=bytes.len() {
        let whole = boundaries.iter().filter(|boundary| **boundary <= cut).count().saturating_sub(1);
        let on_boundary = cut == 0 || boundaries.contains(&cut);
        place(storage, path, &bytes[..cut]).await;
        match recover(storage, path, true).await {
            Ok(recovery) => {
                assert!(on_boundary, "cut {cut}: strict accepted a torn log");
                assert!(reference.is_prefix(&recovery, whole), "cut {cut}: strict recovered the wrong records");
            }
            Err(error) => {
                assert!(!on_boundary, "cut {cut}: strict refused an intact log: {error}");
                assert!(matches!(error, PersistenceError::Truncated { .. }), "cut {cut}: {error}");
                let torn_frame_start = if cut < FILE_HEADER_LEN { 0 } else { boundaries[whole] };
                assert_eq!(damage_offset(&error, path), torn_frame_start as u64, "cut {cut}");
            }
        }
        let recovery = recover(storage, path, false).await.unwrap_or_else(|error| panic!("cut {cut}: {error}"));
        assert!(reference.is_prefix(&recovery, whole), "cut {cut}: non-strict recovered the wrong records");
        assert_eq!(recovery.damage.is_some(), !on_boundary, "cut {cut}: damage reported wrongly");
        assert!(recovery.set_aside.is_none(), "cut {cut}: a torn tail holds no whole record to keep");
    }
}

/// Which frame (by index; `None` for the file header) byte `offset` belongs to.
fn frame_of(boundaries: &[usize], offset: usize) -> Option<usize> {
    if offset < FILE_HEADER_LEN {
        return None;
    }
    Some(boundaries.partition_point(|boundary| *boundary <= offset) - 1)
}

/// Every bit of every byte: strict names the damaged frame; non-strict keeps the
/// frames before it and sets the rest aside, or, for the file header, refuses and
/// leaves the file as it was.
async fn check_every_bit_flip<S: Storage>(storage: &S, path: &Path) {
    let reference = Reference::new(path);
    let (bytes, boundaries) = (&reference.bytes, &reference.boundaries);
    let mut damaged = bytes.clone();
    for offset in 0..bytes.len() {
        let frame = frame_of(boundaries, offset);
        let frame_start = frame.map_or(0, |frame| boundaries[frame]);
        for bit in 0..8_u8 {
            damaged[offset] = bytes[offset] ^ (1 << bit);
            place(storage, path, &damaged).await;
            let error = recover(storage, path, true).await.expect_err("strict must detect every flip");
            assert_eq!(damage_offset(&error, path), frame_start as u64, "byte {offset} bit {bit}: {error}");
            let case = format!("byte {offset} bit {bit}");
            if frame.is_none() {
                let error = recover(storage, path, false).await.expect_err("a damaged header is refused");
                assert_eq!(damage_offset(&error, path), 0, "{case}: {error}");
                assert_eq!(read_all(storage, path).await, damaged, "{case}: the file is left byte-identical");
                continue;
            }
            let recovery = recover(storage, path, false).await.expect("non-strict recovers");
            assert!(reference.is_prefix(&recovery, frame.unwrap_or(0)), "{case}");
            // A flip anywhere in any record but the last, its length field
            // included, leaves intact frames behind it: they must be set aside.
            let last = frame == Some(RECORDS - 1);
            if !last {
                assert!(recovery.set_aside.is_some(), "{case}: intact records behind the flip were not kept");
            }
            if recovery.set_aside.is_some() {
                check_set_aside(storage, &recovery, &damaged[frame_start..], &case).await;
                let counted = recovery.set_aside.as_ref().map_or(0, |aside| aside.records);
                assert!(counted <= (RECORDS - frame.unwrap_or(0)) as u64, "{case}: {counted} records counted");
            }
        }
        damaged[offset] = bytes[offset];
    }
}

async fn read_all<S: Storage>(storage: &S, path: &Path) -> Vec<u8> {
    let mut file = storage.open(path, OpenMode::Existing).await.expect("open");
    let len = file.len().await.expect("len");
    file.read(0, len as usize).await.expect("read")
}

fn sim_disk() -> SimDisk {
    let config = SimDiskConfig { fsync_latency: Duration::ZERO, ..SimDiskConfig::default() };
    SimDisk::new(config, RngTree::new(0).stream("wal_truncation"))
}

/// A tempdir for the real-file runs. On tmpfs (`/dev/shm`) where there is one: these
/// tests fsync tens of thousands of times and test the recovery path, not the
/// device; the syscalls RealStorage makes are the same on any file system.
fn real_log() -> (tempfile::TempDir, PathBuf) {
    let shm = Path::new("/dev/shm");
    let directory = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("tempdir");
    let path = directory.path().join("field_reports.log");
    (directory, path)
}

#[test]
fn recovers_prefix_at_every_truncation_offset_on_sim_disk() {
    paused().block_on(check_every_truncation(&sim_disk(), Path::new("var/wal.log")));
}

#[test]
fn recovers_prefix_at_every_truncation_offset_on_real_files() {
    let (_directory, path) = real_log();
    paused().block_on(check_every_truncation(&RealStorage, &path));
}

#[test]
fn detects_every_bit_flip_on_sim_disk() {
    paused().block_on(check_every_bit_flip(&sim_disk(), Path::new("var/wal.log")));
}

#[test]
fn detects_every_bit_flip_on_real_files() {
    let (_directory, path) = real_log();
    paused().block_on(check_every_bit_flip(&RealStorage, &path));
}
