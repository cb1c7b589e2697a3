//! Disk faults from the fault schedule, applied by the world to a host's `SimDisk` and
//! seen by the WAL running on that host (one case per fault kind, as data).

use std::path::Path;
use std::time::Duration;

use esper_core::storage::StorageError;
use esper_core::wal::{PersistenceError, Wal, WalConfig};
use esper_sim::{
    DiskOp, Fault, FaultSchedule, Invariant, Outcome, ScheduledFault, SimDisk, SimDiskConfig, TraceMode, World,
};

const HOST: &str = "tamiyo";
const LOG: &str = "var/wal.log";
const FAULT_AT_MS: u64 = 100;

/// What the host sees when it touches the log after the fault.
type Check = fn(Result<(), PersistenceError>) -> Result<(), String>;

/// Writes three records, waits for the fault, then appends once more and reopens
/// strictly; `check` judges the outcome.
async fn host(disk: SimDisk, check: Check) -> Result<(), Box<dyn std::error::Error>> {
    let disk_path = Path::new(LOG);
    let (mut wal, _) = Wal::open(&disk, disk_path, WalConfig::default()).await?;
    wal.append_batch(&[b"one".as_slice(), b"two", b"three"]).await?;
    drop(wal);
    tokio::time::sleep(Duration::from_millis(FAULT_AT_MS * 2)).await;
    let outcome = async {
        let (mut wal, _) = Wal::open(&disk, disk_path, WalConfig::default()).await?;
        wal.append(&[7; 64]).await.map(drop)
    }
    .await;
    check(outcome).map_err(Into::into)
}

fn run(fault: Fault, check: Check) -> esper_sim::RunReport {
    let schedule = FaultSchedule::new(vec![ScheduledFault { at_ms: FAULT_AT_MS, fault }]);
    let mut world = World::new(11, schedule);
    let disk = world.disk(HOST, SimDiskConfig::default());
    world.client(HOST, host(disk, check));
    world.run("disk-faults", TraceMode::Full)
}

fn expect(report: &esper_sim::RunReport, line: &str) {
    assert!(report.passed(), "{report}");
    assert!(report.lines.iter().any(|logged| logged.contains(line)), "no {line:?} in the trace: {:#?}", report.lines);
}

#[test]
fn scheduled_disk_faults_reach_the_wal() {
    let host = || HOST.to_owned();
    let cases: [(Fault, Check, &str); 4] = [
        (
            Fault::DiskBitFlip { host: host(), path: LOG.into(), offset: 30, bit: 2 },
            |outcome| match outcome {
                Err(PersistenceError::Corrupt { offset: 27, .. }) => Ok(()),
                other => Err(format!("bit flip in record 2: {other:?}")),
            },
            "bit flip",
        ),
        (
            Fault::DiskTruncate { host: host(), path: LOG.into(), offset: 30 },
            |outcome| match outcome {
                Err(PersistenceError::Truncated { offset: 27, dropped_bytes: 3, .. }) => Ok(()),
                other => Err(format!("truncation in record 2: {other:?}")),
            },
            "truncation",
        ),
        (
            Fault::DiskFull { host: host(), capacity_bytes: 80 },
            |outcome| match outcome {
                Err(PersistenceError::Storage { source: StorageError::NoSpace { len: 72, .. }, .. }) => Ok(()),
                other => Err(format!("append past capacity: {other:?}")),
            },
            "disk_full",
        ),
        (
            Fault::DiskError { host: host(), op: DiskOp::Read, count: 1 },
            |outcome| match outcome {
                Err(PersistenceError::Storage { source: StorageError::Io { .. }, .. }) => Ok(()),
                other => Err(format!("read after EIO armed: {other:?}")),
            },
            "injected EIO",
        ),
    ];
    for (fault, check, line) in cases {
        let report = run(fault, check);
        expect(&report, line);
    }
}

#[test]
fn a_schedule_naming_the_disk_of_a_diskless_host_fails_before_the_run() {
    let fault = Fault::DiskFull { host: "weatherlight".into(), capacity_bytes: 1 };
    let mut world = World::new(1, FaultSchedule::new(vec![ScheduledFault { at_ms: 1, fault }]));
    world.client("weatherlight", async { Ok(()) });
    let report = world.run("disk-faults", TraceMode::Hash);
    match report.outcome {
        Outcome::Failed { violation } => {
            assert_eq!(violation.invariant, Invariant::InvalidSchedule, "{violation}");
            assert!(violation.detail.contains("has no disk"), "{violation}");
        }
        Outcome::Passed => panic!("a diskless host's disk fault must be refused"),
    }
}
