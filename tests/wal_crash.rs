//! Crash safety of the WAL on the simulated disk, over 1,000 seeds.
//!
//! Per seed: three appender tasks share one log through group commit; at a time drawn
//! from the seed the machine loses power (every task is dropped mid-flight, the disk
//! drops or tears its unsynced writes), the log is recovered non-strictly, and the
//! cycle repeats. After every crash: each acknowledged append is recovered, every
//! recovered record is one that some task handed over (intact, no garbage, no
//! duplicates, in each task's order), and the recovered log then opens strictly.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esper_core::wal::group_commit::group_commit;
use esper_core::wal::{Wal, WalConfig};
use esper_sim::disk::CrashEffect;
use esper_sim::{RngTree, SimDisk, SimDiskConfig};
use rand::Rng;
use support::runtime::paused;

const SEEDS: u64 = 1_000;
const CYCLES: u64 = 3;
const APPENDERS: u64 = 3;
const APPENDS_PER_TASK: u64 = 200;
const LOG: &str = "var/tamiyo/field_reports.log";

/// Record `id`'s payload: the id, then 0–40 filler bytes derived from it.
fn payload(id: u64) -> Vec<u8> {
    let mut bytes = id.to_le_bytes().to_vec();
    bytes.extend((0..id % 41).map(|index| (id as u8).wrapping_mul(13).wrapping_add(index as u8)));
    bytes
}

fn decode(record: &[u8]) -> Option<u64> {
    let id = u64::from_le_bytes(record.get(..8)?.try_into().ok()?);
    (payload(id) == record).then_some(id)
}

/// What the appenders did: handed over (attempted) and acknowledged.
#[derive(Debug, Default)]
struct Ledger {
    attempted: BTreeSet<u64>,
    acked: BTreeSet<u64>,
}

/// Recovers the log, starts group commit, and runs the appenders until they finish
/// (or until the caller drops this future: the crash).
async fn workload(disk: SimDisk, ledger: Arc<Mutex<Ledger>>, tree: RngTree, cycle: u64) {
    let (wal, _) = Wal::open(&disk, Path::new(LOG), WalConfig::with_strict(false)).await.expect("recovers");
    let (writer, committer) = group_commit(wal, 16);
    let committer = tokio::spawn(committer.run());
    let mut tasks = Vec::new();
    for appender in 0..APPENDERS {
        let (writer, ledger) = (writer.clone(), Arc::clone(&ledger));
        let mut pauses = tree.stream(&format!("cycle{cycle}/appender{appender}"));
        tasks.push(tokio::spawn(async move {
            for seq in 0..APPENDS_PER_TASK {
                let id = ((cycle * APPENDERS + appender) << 32) | seq;
                ledger.lock().expect("ledger").attempted.insert(id);
                writer.append(payload(id)).await.expect("no faults but crashes: appends succeed");
                ledger.lock().expect("ledger").acked.insert(id);
                tokio::time::sleep(Duration::from_micros(pauses.random_range(0..1_500))).await;
            }
        }));
    }
    drop(writer);
    for task in tasks {
        task.await.expect("appender");
    }
    committer.await.expect("committer");
}

/// Checks the recovered log against the ledger.
fn check_recovered(seed: u64, cycle: u64, records: &[Vec<u8>], ledger: &Ledger) {
    let mut seen = BTreeSet::new();
    let mut last_per_task: BTreeMap<u64, u64> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let id = decode(record).unwrap_or_else(|| panic!("seed {seed} cycle {cycle}: record {index} is garbage"));
        assert!(ledger.attempted.contains(&id), "seed {seed} cycle {cycle}: record {id:#x} was never appended");
        assert!(seen.insert(id), "seed {seed} cycle {cycle}: record {id:#x} recovered twice");
        let previous = last_per_task.insert(id >> 32, id);
        assert!(previous.is_none_or(|previous| previous < id), "seed {seed} cycle {cycle}: {id:#x} out of order");
    }
    let lost: Vec<_> = ledger.acked.difference(&seen).collect();
    assert!(lost.is_empty(), "seed {seed} cycle {cycle}: acknowledged appends lost: {lost:x?}");
}

/// One seed: returns the crashes that found unsynced bytes on the disk.
fn run_seed(seed: u64) -> Vec<CrashEffect> {
    let tree = RngTree::new(seed);
    let mut plan = tree.stream("plan");
    let block_size = [16, 64, 512, 4096][plan.random_range(0..4)];
    let fsync_latency = Duration::from_micros(plan.random_range(50..3_000));
    let disk =
        SimDisk::new(SimDiskConfig { block_size, fsync_latency, ..SimDiskConfig::default() }, tree.stream("disk"));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut torn = Vec::new();
    for cycle in 0..CYCLES {
        let crash_at = Duration::from_micros(plan.random_range(0..150_000));
        let work = workload(disk.clone(), Arc::clone(&ledger), tree.clone(), cycle);
        let finished = paused().block_on(async { tokio::time::timeout(crash_at, work).await.is_ok() });
        // The runtime is gone: every task died where it stood. Now the power goes.
        torn.extend(disk.crash().into_iter().filter(|effect| effect.pending_bytes > 0));
        let recovered = paused().block_on(async {
            let (_, recovery) =
                Wal::open(&disk, Path::new(LOG), WalConfig::with_strict(false)).await.expect("recovers");
            let strict = Wal::open(&disk, Path::new(LOG), WalConfig::with_strict(true)).await;
            assert!(strict.is_ok(), "seed {seed} cycle {cycle}: recovered log still damaged: {strict:?}");
            recovery.records().map(<[u8]>::to_vec).collect::<Vec<_>>()
        });
        let ledger = ledger.lock().expect("ledger");
        check_recovered(seed, cycle, &recovered, &ledger);
        if finished {
            assert_eq!(ledger.acked, ledger.attempted, "seed {seed} cycle {cycle}: finished with appends unanswered");
        }
    }
    torn
}

#[test]
fn every_acknowledged_append_survives_a_crash_and_nothing_else_appears() {
    let mut torn_crashes = 0;
    let mut tears = BTreeSet::new();
    for seed in 0..SEEDS {
        let torn = run_seed(seed);
        torn_crashes += torn.len();
        tears.extend(torn.iter().map(|effect| effect.tear));
    }
    eprintln!("{torn_crashes} of {} crashes found unsynced bytes; tears: {tears:?}", SEEDS * CYCLES);
    // The property is only worth something if crashes really caught writes in flight.
    assert!(torn_crashes > 500, "only {torn_crashes} crashes found unsynced bytes");
    assert_eq!(tears.into_iter().collect::<Vec<_>>(), ["cut", "dropped", "garbage", "zeros"]);
}
