//! The poisoned field-report log drill (issue 22), shared by
//! `tests/tamiyo_field_reports.rs` (it passes) and `tests/invariants_falsifiable.rs`
//! (it fails with the planted `poisoned-log-never-reopens` bug armed).

use esper_core::leyline::{FieldReport, FieldReportOutcome, Timestamp};
use esper_core::planted::Planted;
use esper_core::tamiyo::field_reports::{FieldReportConfig, FieldReportStore, TamiyoPersistenceError};
use esper_sim::{DiskOp, RngTree, SimDisk, SimDiskConfig};

/// 2025-01-01T00:00:00Z, the sim's epoch.
const T0_MS: u64 = 1_735_689_600_000;

/// A successful field report numbered `id`, issued at `issued_ms` (Unix ms; 0 leaves
/// `issued_at` unset).
pub fn report(id: u32, issued_ms: u64) -> FieldReport {
    FieldReport {
        version: 1,
        report_id: format!("fr-{id}"),
        command_id: format!("cmd-{id}"),
        seed_id: "seed-1".into(),
        outcome: FieldReportOutcome::Success as i32,
        metrics: [("loss_delta".to_owned(), -0.01 * id as f32)].into(),
        observation_window_epochs: 1,
        issued_at: (issued_ms > 0).then(|| Timestamp::from_millis(issued_ms)),
        ..FieldReport::default()
    }
}

/// A failed fsync poisons the log; Tamiyo must refuse the next report while its
/// 100 ms backoff runs, then reopen the log (rewriting it from the reports it
/// acknowledged) and acknowledge again, and every acknowledged report — none
/// refused — must survive a restart. `Err` says which step broke.
pub async fn poisoned_log_drill(planted: Planted) -> Result<(), String> {
    let disk = SimDisk::new(SimDiskConfig::default(), RngTree::new(3).stream("disk"));
    let mut config = FieldReportConfig::new("var/tamiyo");
    config.wal.strict = false;
    config.wal.planted = planted;
    let mut store = FieldReportStore::open(disk.clone(), config.clone(), T0_MS).await.map_err(|e| e.to_string())?;
    store.append(report(1, T0_MS), T0_MS).await.map_err(|error| format!("report 1: {error}"))?;
    disk.fail_next(DiskOp::Fsync, 1);
    if store.append(report(2, T0_MS), T0_MS).await.is_ok() {
        return Err("report 2 was acknowledged although its fsync failed".to_owned());
    }
    match store.append(report(3, T0_MS), T0_MS + 10).await {
        Err(TamiyoPersistenceError::ReopenBackingOff { retry_in_ms: 90, .. }) => {}
        other => return Err(format!("report 3, 10 ms after the failure: wanted a 90 ms wait, got {other:?}")),
    }
    for (id, at_ms) in [(4, T0_MS + 100), (5, T0_MS + 101)] {
        store
            .append(report(id, T0_MS), at_ms)
            .await
            .map_err(|error| format!("report {id} after the backoff: {error}"))?;
    }
    if store.metrics().wal_reopens_total != 1 {
        return Err(format!("{} reopens, wanted 1", store.metrics().wal_reopens_total));
    }
    drop(store);
    disk.crash();
    config.wal.strict = true;
    let reopened = FieldReportStore::open(disk, config, T0_MS + 200).await.map_err(|e| e.to_string())?;
    let ids: Vec<&str> = reopened.reports().iter().map(|report| report.report_id.as_str()).collect();
    if ids != ["fr-1", "fr-4", "fr-5"] {
        return Err(format!("after a restart the log holds {ids:?}, wanted every acknowledged report"));
    }
    Ok(())
}
