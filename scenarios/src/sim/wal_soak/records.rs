//! The soak's pieces, shared by the real run and the sim scenario.

use std::path::Path;

use esper_core::leyline::{FieldReport, FieldReportOutcome, Timestamp};
use esper_core::storage::{OpenMode, Storage, StorageError, StorageFile};
use esper_core::tamiyo::field_reports::{FieldReportStore, RetryEntry};

/// Esper-Lite's injection: a bare length prefix (`u32` LE 64) with no payload, as a
/// crash mid-append would leave.
pub const TORN_RECORD: [u8; 4] = 64_u32.to_le_bytes();

/// The report the soak appends at `iteration` (1-based), issued at `now_ms`.
pub fn soak_report(iteration: u64, now_ms: u64) -> FieldReport {
    FieldReport {
        version: 1,
        report_id: report_id(iteration),
        command_id: format!("cmd-{iteration:06}"),
        training_run_id: "wal-soak".into(),
        seed_id: format!("seed-{}", iteration % 4),
        outcome: FieldReportOutcome::Success as i32,
        metrics: [("loss_delta".to_owned(), -0.001 * iteration as f32)].into(),
        observation_window_epochs: 1,
        issued_at: Some(Timestamp::from_millis(now_ms)),
        ..FieldReport::default()
    }
}

/// The report id of `iteration`; sorts in iteration order.
pub fn report_id(iteration: u64) -> String {
    format!("fr-{iteration:06}")
}

/// Appends the torn record to the log at `log` and fsyncs it.
pub async fn inject_torn_record<S: Storage>(storage: &S, log: &Path) -> Result<(), StorageError> {
    let mut file = storage.open(log, OpenMode::Existing).await?;
    file.append(&TORN_RECORD).await?;
    file.sync().await
}

/// Publishing as the soak models it: two reports in three go out at once, the third
/// waits in the retry backlog (so the index sidecar is rewritten under the soak).
pub fn publish_outcome(iteration: u64, now_ms: u64) -> RetryEntry {
    if iteration % 3 == 0 {
        RetryEntry {
            retry_count: 1,
            next_attempt_ms: now_ms + 2_000,
            last_error: Some("oona timeout".into()),
            ..RetryEntry::default()
        }
    } else {
        RetryEntry { published: true, ..RetryEntry::default() }
    }
}

/// Checks a reopened store against what was acknowledged: every acknowledged report
/// is there, in order, and nothing else but reports that were handed over (up to
/// `attempted`). Returns the highest iteration found.
pub fn check_recovered<S: Storage>(store: &FieldReportStore<S>, acked: &[u64], attempted: u64) -> Result<u64, String> {
    let found: Vec<&str> = store.reports().iter().map(|report| report.report_id.as_str()).collect();
    let mut highest = 0;
    let mut next_acked = acked.iter().peekable();
    for id in &found {
        let iteration = id.strip_prefix("fr-").and_then(|digits| digits.parse::<u64>().ok());
        let iteration = iteration.filter(|iteration| (1..=attempted).contains(iteration));
        let iteration = iteration.ok_or_else(|| format!("recovered {id}, which was never appended"))?;
        if iteration <= highest {
            return Err(format!("recovered {id} out of order or twice"));
        }
        highest = iteration;
        next_acked.next_if_eq(&&iteration);
    }
    match next_acked.next() {
        Some(lost) => Err(format!("acknowledged report {} lost ({} recovered)", report_id(*lost), found.len())),
        None => Ok(highest),
    }
}
