//! The WAL and the storage seam under injected disk faults (one case per fault kind).

mod support;

use std::path::Path;
use std::time::Duration;

use esper_core::storage::{OpenMode, Storage, StorageError, StorageFile, read_if_exists, write_atomic};
use esper_core::wal::frame::{FILE_HEADER_LEN, MAGIC};
use esper_core::wal::group_commit::group_commit;
use esper_core::wal::{PersistenceError, Wal, WalConfig};
use esper_sim::{DiskOp, RngTree, SimDisk, SimDiskConfig};
use support::runtime::block_on;
use support::sim::disk;

const LOG: &str = "var/wal.log";

async fn open(disk: &SimDisk, strict: bool) -> Result<(Wal<SimDisk>, Vec<Vec<u8>>), PersistenceError> {
    let (wal, recovery) = Wal::open(disk, Path::new(LOG), WalConfig::with_strict(strict)).await?;
    Ok((wal, recovery.records().map(<[u8]>::to_vec).collect()))
}

#[test]
fn fsync_eio_fails_the_append_and_poisons_the_log_until_reopened() {
    block_on(async {
        let disk = disk(1);
        let (mut wal, _) = open(&disk, true).await.expect("open");
        wal.append(b"kept").await.expect("first append");
        disk.fail_next(DiskOp::Fsync, 1);
        let error = wal.append(b"unacked").await.expect_err("fsync fails");
        assert!(matches!(&error, PersistenceError::Storage { source: StorageError::Io { .. }, .. }), "{error}");
        assert!(error.to_string().contains(LOG), "{error}");
        let poisoned = wal.append(b"after").await.expect_err("poisoned");
        assert!(matches!(poisoned, PersistenceError::Poisoned { .. }), "{poisoned}");
        drop(wal);
        disk.crash();
        let (_, records) = open(&disk, false).await.expect("reopen");
        assert_eq!(records.first().map(Vec::as_slice), Some(&b"kept"[..]));
    });
}

#[test]
fn enospc_refuses_the_batch_whole_and_the_log_goes_on_when_space_returns() {
    block_on(async {
        let disk = disk(1);
        let (mut wal, _) = open(&disk, true).await.expect("open");
        disk.set_capacity(Some(64));
        let error = wal.append(&[0_u8; 100]).await.expect_err("disk full");
        assert!(matches!(error, PersistenceError::Storage { source: StorageError::NoSpace { len: 108, .. }, .. }));
        disk.set_capacity(None);
        assert_eq!(wal.append(b"fits").await.expect("space again"), 0);
        drop(wal);
        assert_eq!(open(&disk, true).await.expect("intact").1, vec![b"fits".to_vec()]);
    });
}

#[test]
fn read_eio_on_open_is_a_typed_error_naming_the_file() {
    block_on(async {
        let disk = disk(1);
        drop(open(&disk, true).await.expect("create"));
        disk.fail_next(DiskOp::Read, 1);
        let error = open(&disk, false).await.expect_err("read fails");
        assert!(matches!(&error, PersistenceError::Storage { source: StorageError::Io { .. }, .. }), "{error}");
        assert!(error.to_string().contains("var/wal.log"), "{error}");
    });
}

#[test]
fn scheduled_truncation_and_bit_flip_are_caught_on_reopen() {
    block_on(async {
        let disk = disk(1);
        let (mut wal, _) = open(&disk, true).await.expect("open");
        wal.append_batch(&[b"one".as_slice(), b"two", b"three"]).await.expect("batch");
        drop(wal);
        assert!(disk.flip_bit(Path::new(LOG), (FILE_HEADER_LEN + 8 + 3 + 8) as u64, 0));
        let error = open(&disk, true).await.expect_err("flip detected");
        assert!(matches!(error, PersistenceError::Corrupt { offset: 27, .. }), "{error}");
        assert!(disk.truncate_at(Path::new(LOG), 20));
        let error = open(&disk, true).await.expect_err("cut detected");
        assert!(matches!(error, PersistenceError::Truncated { offset: 16, .. }), "{error}");
        assert_eq!(open(&disk, false).await.expect("non-strict").1, Vec::<Vec<u8>>::new());
    });
}

#[test]
fn group_commit_shares_one_fsync_among_concurrent_appends() {
    block_on(async {
        let disk = disk(1);
        let (wal, _) = open(&disk, true).await.expect("open");
        let before = disk.fsync_count();
        let (writer, committer) = group_commit(wal, 64);
        let committer = tokio::spawn(committer.run());
        let appends: Vec<_> = (0..50_u8)
            .map(|index| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.append(vec![index]).await })
            })
            .collect();
        drop(writer);
        let mut indexes = Vec::new();
        for append in appends {
            indexes.push(append.await.expect("task").expect("acked"));
        }
        let wal = committer.await.expect("committer");
        indexes.sort_unstable();
        assert_eq!(indexes, (0..50).collect::<Vec<u64>>());
        assert_eq!(wal.records(), 50);
        let fsyncs = disk.fsync_count() - before;
        assert!((1..=3).contains(&fsyncs), "50 concurrent appends took {fsyncs} fsyncs");
    });
}

#[test]
fn bounds_are_typed_errors_and_write_nothing() {
    block_on(async {
        let disk = disk(1);
        let config = WalConfig { max_record_bytes: 8, max_batch_records: 2, ..WalConfig::default() };
        let (mut wal, _) = Wal::open(&disk, Path::new(LOG), config).await.expect("open");
        let too_big = wal.append(&[0; 9]).await.expect_err("record bound");
        assert!(matches!(too_big, PersistenceError::RecordTooLarge { len: 9, limit: 8, .. }), "{too_big}");
        let batch = wal.append_batch(&[b"a", b"b", b"c"]).await.expect_err("batch bound");
        assert!(matches!(batch, PersistenceError::BadBatch { len: 3, limit: 2, .. }), "{batch}");
        let empty = wal.append_batch::<&[u8]>(&[]).await.expect_err("empty batch");
        assert!(matches!(empty, PersistenceError::BadBatch { len: 0, .. }), "{empty}");
        assert_eq!(wal.len_bytes(), FILE_HEADER_LEN as u64);
    });
}

#[test]
fn a_log_from_another_format_version_is_refused_even_non_strict() {
    block_on(async {
        let disk = disk(1);
        let mut header = MAGIC.to_vec();
        header.extend(2_u32.to_le_bytes());
        header.extend(crc32c::crc32c(&header).to_le_bytes());
        let mut file = disk.open(Path::new(LOG), OpenMode::Create).await.expect("create");
        file.append(&header).await.expect("write");
        let error = open(&disk, false).await.expect_err("other version");
        assert!(matches!(error, PersistenceError::UnsupportedVersion { found: 2, supported: 1, .. }), "{error}");
        assert_eq!(disk.contents(Path::new(LOG)).expect("still there"), header, "never truncated");
    });
}

#[test]
fn atomic_replace_survives_a_crash_and_unsynced_creates_vanish() {
    block_on(async {
        let disk = disk(1);
        let sidecar = Path::new("var/field_reports.index.json");
        write_atomic(&disk, sidecar, b"old").await.expect("first write");
        write_atomic(&disk, sidecar, b"new").await.expect("replace");
        let mut stray = disk.open(Path::new("var/stray"), OpenMode::Create).await.expect("create");
        stray.append(b"x").await.expect("write");
        stray.sync().await.expect("fsync file but not dir");
        drop(stray);
        disk.crash();
        assert_eq!(read_if_exists(&disk, sidecar, 1024).await.expect("read"), Some(b"new".to_vec()));
        assert_eq!(disk.list(Path::new("var")).await.expect("list"), vec![sidecar.to_path_buf()]);
        let error = read_if_exists(&disk, sidecar, 2).await.expect_err("bound");
        assert!(matches!(error, StorageError::TooLarge { len: 3, limit_bytes: 2, .. }), "{error}");
    });
}

#[test]
fn a_crash_between_write_and_fsync_loses_the_write() {
    block_on(async {
        let disk = SimDisk::new(
            SimDiskConfig { fsync_latency: Duration::from_millis(5), ..SimDiskConfig::default() },
            RngTree::new(2).stream("disk"),
        );
        let (mut wal, _) = open(&disk, true).await.expect("open");
        wal.append(b"durable").await.expect("append");
        let in_flight = tokio::time::timeout(Duration::from_millis(1), wal.append(b"in flight")).await;
        assert!(in_flight.is_err(), "the fsync takes 5 ms");
        drop(wal);
        let effects = disk.crash();
        assert_eq!(effects.len(), 1);
        assert!(effects[0].pending_bytes > 0);
        let (_, records) = open(&disk, false).await.expect("recovers");
        assert_eq!(records, vec![b"durable".to_vec()]);
    });
}
