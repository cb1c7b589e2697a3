//! `wal-soak` as a sim scenario: the soak on a `SimDisk`, with power losses.
//!
//! The `tamiyo` host runs the soak against its simulated disk (non-strict, so that
//! recovery after a crash cuts torn tails away): append, publish, inject a torn record
//! every ten acknowledged reports, check that strict mode refuses it and changes nothing
//! ([`super::refusal`]), and restart the store; five reports after each injection,
//! flip a bit of the file header (every mode must refuse the log, untouched; the bit
//! is then flipped back), then a drawn bit of a drawn record at rest, and restart
//! the store ([`super::rot`]: the records before it kept, the rest cut and set aside
//! when whole ones remain); two reports later, fail the append's fsync (the store
//! keeps its log and must reopen it by itself). The schedule, drawn from the seed,
//! crashes and restarts the host (dropping or tearing every unsynced write) and may
//! fail an fsync. After every start the host checks the promise — every
//! acknowledged report recovered, in order, nothing that was never appended — runs a
//! round of group commit at the WAL's bounds ([`super::batches`]), and records
//! violations in a ledger the `operator` client reads at the end (safety), after
//! waiting for the soak to finish (liveness).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use esper_core::tamiyo::field_reports::{FieldReportConfig, FieldReportStore, TamiyoPersistenceError};
use esper_core::wal::{LOG_TARGET, PersistenceError, WalConfig};
use esper_sim::{
    DiskOp, Fault, FaultSchedule, Invariant, RngTree, ScheduledFault, SimDisk, SimDiskConfig, SimScenario, Violation,
    World,
};
use rand::Rng;

use super::batches::{self, SharedBatches};
use super::cut_warnings;
use super::records::{TORN_RECORD, check_recovered, inject_torn_record, publish_outcome, report_id, soak_report};
use super::refusal;
use super::rot::{self, Rot};

trace_target!("wal_soak");

const HOST: &str = "tamiyo";
const OPERATOR: &str = "operator";
const STORE_DIR: &str = "var/tamiyo";
/// Reports to acknowledge, and the injection period (Esper-Lite's soak defaults).
const ITERATIONS: u64 = 50;
const TRUNCATE_EVERY: u64 = 10;
/// Unix ms of the world's epoch (2025-01-01T00:00:00Z).
const EPOCH_MS: u64 = 1_735_689_600_000;
/// The acknowledged report, in each period, whose append the soak first fails with an fsync EIO
/// (the store must heal itself: see [`unhealed_refusal`]).
const FAILED_FSYNC_AT: u64 = 7;
/// Sim time by which the soak must be done once the last fault has struck.
const LIVENESS_BOUND: Duration = Duration::from_secs(30);
/// How long a store may refuse appends after a failed fsync: its reopen waits
/// 100 ms, then 200 ms if the reopen fails too, and two EIOs at most are armed
/// (the soak's and the schedule's), so it is back within 300 ms.
const HEAL_BOUND_MS: u64 = 1_000;
/// The pause before retrying a refused append.
const HEAL_PAUSE: Duration = Duration::from_millis(25);
/// Attempts to open the store before a start counts as failed (EIO can hit the read).
const OPEN_ATTEMPTS: u32 = 5;

/// The scenario as registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalSoakScenario;

/// What the soak did, shared by the host's boots and read by the operator.
#[derive(Debug, Default)]
struct Ledger {
    attempted: u64,
    /// Acknowledged reports the log still promises (a bit flip moves the ones
    /// it cuts to a set-aside file).
    acked: Vec<u64>,
    /// Reports acknowledged over the run.
    acknowledged: u64,
    boots: u64,
    injections: u64,
    /// A bit flipped since the last open, and what the next open must show.
    pending_rot: Option<Rot>,
    /// Every flip the store has since reopened after: its set-aside file must
    /// still hold the tail at the end of the run.
    rots: Vec<Rot>,
    append_errors: u64,
    violations: Vec<String>,
    done: bool,
}

type SharedLedger = Arc<Mutex<Ledger>>;

fn lock(ledger: &SharedLedger) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    let elapsed = turmoil::sim_elapsed().unwrap_or_default();
    EPOCH_MS + u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

impl SimScenario for WalSoakScenario {
    fn name(&self) -> &'static str {
        "wal-soak"
    }

    fn summary(&self) -> &'static str {
        "Tamiyo's field-report WAL on a simulated disk: torn records, power losses, fsync errors"
    }

    /// Swarm style: first which fault kinds are on for this seed, then when.
    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("wal-soak");
        let host = || HOST.to_owned();
        let mut faults = Vec::new();
        let mut at_ms = 0;
        for _ in 0..draws.random_range(1..=3) {
            at_ms += draws.random_range(60..500);
            faults.push(ScheduledFault { at_ms, fault: Fault::Crash { host: host() } });
            at_ms += draws.random_range(10..300);
            faults.push(ScheduledFault { at_ms, fault: Fault::Restart { host: host() } });
        }
        if draws.random_bool(0.5) {
            let fault = Fault::DiskError { host: host(), op: DiskOp::Fsync, count: 1 };
            faults.push(ScheduledFault { at_ms: draws.random_range(20..at_ms), fault });
        }
        FaultSchedule::new(faults)
    }

    fn populate(&self, world: &mut World) {
        let config =
            SimDiskConfig { block_size: 512, fsync_latency: Duration::from_millis(2), ..SimDiskConfig::default() };
        let disk = world.disk(HOST, config);
        let ledger = SharedLedger::default();
        let rng = world.rng().child("wal-soak");
        let last_fault = world.schedule().faults().last().map_or(0, |scheduled| scheduled.at_ms);
        let (host_ledger, host_disk, batch_ledger) = (Arc::clone(&ledger), disk.clone(), SharedBatches::default());
        world.host(HOST, move || {
            tamiyo(host_disk.clone(), Arc::clone(&host_ledger), Arc::clone(&batch_ledger), rng.clone())
        });
        world.client(OPERATOR, async move { operator(ledger, disk, last_fault).await.map_err(Into::into) });
        world.check_log(LOG_TARGET, Invariant::WalAcknowledged, cut_warnings::check);
    }
}

/// One boot of the Tamiyo host: open the store, check it, run the soak until it is
/// done, restarting the store in-process after each injection or rot. An append
/// the store refuses (a failed fsync poisons its log) is retried on the same store,
/// which must bring its log back by itself within [`HEAL_BOUND_MS`].
async fn tamiyo(disk: SimDisk, ledger: SharedLedger, batch_ledger: SharedBatches, rng: RngTree) -> turmoil::Result {
    let boot = {
        let mut ledger = lock(&ledger);
        ledger.boots += 1;
        ledger.boots
    };
    let mut pauses = rng.stream(&format!("boot{boot}"));
    let mut config = FieldReportConfig::new(STORE_DIR);
    config.wal = WalConfig::with_strict(false);
    loop {
        let Some(mut store) = open_checked(&disk, &config, &ledger).await else { return Ok(()) };
        let batched = batches::round(&disk, &batch_ledger, &mut pauses).await;
        lock(&ledger).violations.extend(batched.err());
        // When the store began refusing appends, while it does.
        let mut refused_since = None;
        loop {
            if lock(&ledger).acknowledged >= ITERATIONS {
                lock(&ledger).done = true;
                return Ok(());
            }
            let iteration = {
                let mut ledger = lock(&ledger);
                ledger.attempted += 1;
                ledger.attempted
            };
            let now = now_ms();
            // Armed once per period, not again for the retries of a refused append.
            if refused_since.is_none() && (lock(&ledger).acknowledged + 1) % TRUNCATE_EVERY == FAILED_FSYNC_AT {
                disk.fail_next(DiskOp::Fsync, 1);
            }
            if let Err(error) = store.append(soak_report(iteration, now), now).await {
                lock(&ledger).append_errors += 1;
                // As Tamiyo's service does, keep the store: it must heal itself.
                let since = *refused_since.get_or_insert(now);
                if let Some(violation) = unhealed_refusal(&error, now - since) {
                    lock(&ledger).violations.push(violation);
                    break;
                }
                tokio::time::sleep(HEAL_PAUSE).await;
                continue;
            }
            refused_since = None;
            // The report's place in its period of TRUNCATE_EVERY acknowledged ones
            // (refused attempts take report ids, not places).
            let place = {
                let mut ledger = lock(&ledger);
                ledger.acked.push(iteration);
                ledger.acknowledged += 1;
                ledger.acknowledged % TRUNCATE_EVERY
            };
            if store.update_retry(&report_id(iteration), publish_outcome(iteration, now)).await.is_err() {
                break;
            }
            if place == 0 {
                drop(store);
                if inject_torn_record(&disk, &config.log_path()).await.is_ok() {
                    lock(&ledger).injections += 1;
                    let refused = refusal::check_torn_tail(&disk, &config, TORN_RECORD.len() as u64).await;
                    lock(&ledger).violations.extend(refused.err());
                    let mut draws = rng.stream(&format!("torn-header{iteration}"));
                    let repaired = refusal::check_torn_header(&disk, &config.dir, &mut draws).await;
                    lock(&ledger).violations.extend(repaired.err());
                }
                break;
            }
            if place == TRUNCATE_EVERY / 2 {
                drop(store);
                let mut header_draws = rng.stream(&format!("header{iteration}"));
                let refused = refusal::check_damaged_header(&disk, &config, &mut header_draws).await;
                lock(&ledger).violations.extend(refused.err());
                let mut draws = rng.stream(&format!("rot{iteration}"));
                match rot::flip_record(&disk, &config.log_path(), &mut draws).await {
                    Ok(Some(rot)) => {
                        let mut ledger = lock(&ledger);
                        // The cut reports are set aside, no longer promised in the log.
                        ledger.acked.retain(|iteration| !rot.cut.contains(&report_id(*iteration)));
                        ledger.pending_rot = Some(rot);
                    }
                    Ok(None) => {}
                    Err(violation) => lock(&ledger).violations.push(violation),
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(pauses.random_range(1..20))).await;
        }
    }
}

/// Why a refused append breaks the healing promise, if it does: only the fault
/// itself (a storage error) and then the reopen's backoff may refuse, and only
/// within [`HEAL_BOUND_MS`] of the first refusal. A `Poisoned` refusal means the
/// store gave up on reopening its log by itself.
fn unhealed_refusal(error: &TamiyoPersistenceError, refusing_ms: u64) -> Option<String> {
    let expected = matches!(
        error,
        TamiyoPersistenceError::Wal(PersistenceError::Storage { .. }) | TamiyoPersistenceError::ReopenBackingOff { .. }
    );
    if !expected {
        return Some(format!("after a failed write the store refused an append with: {error}"));
    }
    (refusing_ms > HEAL_BOUND_MS).then(|| {
        format!(
            "the store still refused appends {refusing_ms} ms after its first refusal (two fsync EIOs \
             at most, a {HEAL_BOUND_MS} ms bound): {error}"
        )
    })
}

/// Opens the store (retrying a few times: an injected EIO may hit the read) and
/// checks it against the ledger. `None` means give up this boot.
async fn open_checked(
    disk: &SimDisk,
    config: &FieldReportConfig,
    ledger: &SharedLedger,
) -> Option<FieldReportStore<SimDisk>> {
    for _ in 0..OPEN_ATTEMPTS {
        match FieldReportStore::open(disk.clone(), config.clone(), now_ms()).await {
            Ok(store) => {
                let pending = lock(ledger).pending_rot.take();
                if let Some(rot) = pending {
                    let checked = rot::check_open(disk, &config.log_path(), &store, &rot).await;
                    let mut ledger = lock(ledger);
                    ledger.violations.extend(checked.err());
                    ledger.rots.push(rot);
                }
                let mut ledger = lock(ledger);
                if let Err(violation) = check_recovered(&store, &ledger.acked, ledger.attempted) {
                    ledger.violations.push(violation);
                }
                return Some(store);
            }
            Err(error) => {
                tracing::warn!(target: TRACE_TARGET, error = %error, "store open failed; retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    lock(ledger)
        .violations
        .push(format!("{} could not be opened {OPEN_ATTEMPTS} times in a row", Path::new(STORE_DIR).display()));
    None
}

/// Waits for the soak to finish (liveness, bounded after the last fault), then
/// reports any violation the host recorded and checks every set-aside tail is
/// still on disk (safety).
async fn operator(ledger: SharedLedger, disk: SimDisk, last_fault_ms: u64) -> Result<(), Violation> {
    let deadline = Duration::from_millis(last_fault_ms) + LIVENESS_BOUND;
    while !lock(&ledger).done {
        if turmoil::sim_elapsed().unwrap_or_default() > deadline {
            let ledger = lock(&ledger);
            return Err(Invariant::Liveness
                .violated(format!("{} of {ITERATIONS} reports acknowledged by {deadline:?}", ledger.acknowledged)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rots = lock(&ledger).rots.clone();
    // (A flip of a last record set nothing aside; a later flip at the same offset
    // may since have taken the name it left free.)
    for rot in rots.iter().filter(|rot| rot.records_behind) {
        rot::check_aside(&disk, rot)
            .await
            .map_err(|detail| Invariant::WalAcknowledged.violated(format!("at the end: {detail}")))?;
    }
    let ledger = lock(&ledger);
    if let Some(violation) = ledger.violations.first() {
        return Err(Invariant::WalAcknowledged.violated(violation.clone()));
    }
    tracing::info!(
        target: TRACE_TARGET,
        acknowledged = ledger.acknowledged,
        attempted = ledger.attempted,
        boots = ledger.boots,
        injections = ledger.injections,
        bit_flips = ledger.rots.len(),
        append_errors = ledger.append_errors,
        "wal soak done"
    );
    Ok(())
}
