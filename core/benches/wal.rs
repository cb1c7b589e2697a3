//! WAL costs on real files: append throughput with group commit against one fsync per
//! record (the Esper-Lite way), and recovery time of a 100k-record log against simply
//! reading the file.
//!
//! `cargo bench -p esper-core --bench wal [-- --records N --dir DIR]`
//!
//! The log lives in a fresh temporary directory (or under `--dir`, to measure another
//! device); fsync costs whatever that device charges.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use esper_core::storage::RealStorage;
use esper_core::wal::group_commit::group_commit;
use esper_core::wal::rewrite::encode_log;
use esper_core::wal::{Wal, WalConfig};

/// Payload size: about one encoded Leyline `FieldReport`.
const PAYLOAD_BYTES: usize = 96;
const SINGLE_RECORDS: usize = 400;
const APPENDERS: usize = 64;
const GROUP_RECORDS: usize = 6_400;
const RECOVERY_RUNS: usize = 10;

fn main() {
    let records = argument("--records").and_then(|value| value.parse().ok()).unwrap_or(100_000);
    let base = argument("--dir").map(PathBuf::from);
    let directory = match &base {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    println!("wal bench in {} ({PAYLOAD_BYTES}-byte records)", directory.path().display());
    runtime.block_on(append_throughput(directory.path()));
    recovery_time(&runtime, directory.path(), records);
}

fn argument(name: &str) -> Option<String> {
    let arguments: Vec<String> = std::env::args().collect();
    arguments.iter().position(|argument| argument == name).and_then(|index| arguments.get(index + 1).cloned())
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// One fsync per record, then `APPENDERS` tasks sharing fsyncs through group commit.
async fn append_throughput(dir: &Path) {
    let payload = vec![0x5a_u8; PAYLOAD_BYTES];
    let (mut wal, _) = Wal::open(&RealStorage, &dir.join("single.log"), WalConfig::default()).await.expect("open");
    let started = Instant::now();
    for _ in 0..SINGLE_RECORDS {
        wal.append(&payload).await.expect("append");
    }
    let single = per_second(SINGLE_RECORDS, started.elapsed());

    let (wal, _) = Wal::open(&RealStorage, &dir.join("group.log"), WalConfig::default()).await.expect("open");
    let (writer, committer) = group_commit(wal, APPENDERS * 2);
    let per_task = GROUP_RECORDS / APPENDERS;
    let started = Instant::now();
    let committer = tokio::spawn(committer.run());
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|_| {
            let (writer, payload) = (writer.clone(), payload.clone());
            tokio::spawn(async move {
                for _ in 0..per_task {
                    writer.append(payload.clone()).await.expect("append");
                }
            })
        })
        .collect();
    drop(writer);
    for task in tasks {
        task.await.expect("appender");
    }
    let wal = committer.await.expect("committer");
    let group = per_second(APPENDERS * per_task, started.elapsed());
    assert_eq!(wal.records(), (APPENDERS * per_task) as u64);
    println!("append, one fsync per record:   {single:>10.0} records/s ({SINGLE_RECORDS} records)");
    println!("append, group commit ({APPENDERS} tasks): {group:>10.0} records/s ({} records)", APPENDERS * per_task);
    println!("  ratio group commit / one fsync per record: {:.1}x", group / single);
}

/// Opens (recovers) a log of `records` records, against reading the same file.
fn recovery_time(runtime: &tokio::runtime::Runtime, dir: &Path, records: usize) {
    let path = dir.join("recovery.log");
    let payloads: Vec<Vec<u8>> = (0..records).map(|index| vec![index as u8; PAYLOAD_BYTES]).collect();
    let bytes = encode_log(&path, &payloads, &WalConfig::default()).expect("encode");
    std::fs::write(&path, &bytes).expect("write log");
    let mut recover = Vec::new();
    let mut read = Vec::new();
    for _ in 0..RECOVERY_RUNS {
        let started = Instant::now();
        let (_, recovery) = runtime.block_on(Wal::open(&RealStorage, &path, WalConfig::default())).expect("recovers");
        recover.push(started.elapsed());
        assert_eq!(recovery.records().len(), records);
        let started = Instant::now();
        let read_back = std::hint::black_box(std::fs::read(&path).expect("read"));
        read.push(started.elapsed());
        assert_eq!(read_back.len(), bytes.len());
    }
    recover.sort();
    read.sort();
    let median = |times: &[Duration]| times[times.len() / 2].as_secs_f64() * 1e3;
    let (recover_ms, read_ms) = (median(&recover), median(&read));
    println!(
        "recovery of {records} records ({:.1} MB): median {recover_ms:.2} ms, min {:.2} ms over {RECOVERY_RUNS} runs",
        bytes.len() as f64 / 1e6,
        recover[0].as_secs_f64() * 1e3
    );
    println!("  reading the file alone: median {read_ms:.2} ms; ratio recovery / read: {:.2}x", recover_ms / read_ms);
}
