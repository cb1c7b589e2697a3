//! `FieldReportStore`: the log, the sidecars and retention, behind one handle.

use prost::Message;

use crate::leyline::{Contract as _, FieldReport, Timestamp};
use crate::planted::PlantedBug;
use crate::storage::Storage;
use crate::wal::rewrite::rewrite;
use crate::wal::{Damage, Recovery, Wal};

use super::config::FieldReportConfig;
use super::error::TamiyoPersistenceError;
use super::metrics::FieldReportMetrics;
use super::sidecar::{Loaded, ObservationWindow, RetryEntry, RetryIndex, Windows, load, save};

/// Tamiyo's persisted field reports. See the module docs for the files.
#[derive(Debug)]
pub struct FieldReportStore<S: Storage> {
    storage: S,
    config: FieldReportConfig,
    wal: Wal<S>,
    /// Retained reports, oldest first (log order).
    reports: Vec<FieldReport>,
    index: RetryIndex,
    windows: Windows,
    metrics: FieldReportMetrics,
    damage: Option<Damage>,
    reopen: ReopenBackoff,
}

/// When a poisoned log may next be reopened: 100 ms after the failure, doubling
/// to 30 s while reopens fail, so a failing disk is not hammered and a healed one
/// is back in use within a bounded time.
#[derive(Debug, Clone, Copy, Default)]
struct ReopenBackoff {
    failures: u32,
    next_at_ms: u64,
}

impl ReopenBackoff {
    const BASE_MS: u64 = 100;
    const CAP_MS: u64 = 30_000;

    fn failed(&mut self, now_ms: u64) {
        let delay_ms = Self::BASE_MS.saturating_mul(1 << self.failures.min(16)).min(Self::CAP_MS);
        self.failures = self.failures.saturating_add(1);
        self.next_at_ms = now_ms.saturating_add(delay_ms);
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionReport {
    /// Reports kept.
    pub kept: usize,
    /// Reports dropped for age.
    pub dropped: usize,
}

/// When `report` was issued, in Unix ms (Esper-Lite: a missing or zero time reads as now).
fn issued_ms(report: &FieldReport, now_ms: u64) -> u64 {
    match report.issued_at.map(|issued| issued.as_millis()) {
        Some(ms) if ms > 0 => ms,
        _ => now_ms,
    }
}

impl<S: Storage> FieldReportStore<S> {
    /// Opens the store in `config.dir`: recovers the log (strict or not), decodes it,
    /// drops expired reports (rewriting the log if any were), loads or rebuilds the
    /// sidecars. `now_ms` is Unix ms from the caller's clock (virtual in the sim).
    pub async fn open(storage: S, config: FieldReportConfig, now_ms: u64) -> Result<Self, TamiyoPersistenceError> {
        let log_path = config.log_path();
        let (wal, recovery) = Wal::open(&storage, &log_path, config.wal).await?;
        let mut metrics = FieldReportMetrics {
            wal_truncated_bytes: recovery.damage.map_or(0, |damage| damage.dropped_bytes),
            wal_set_aside_records: recovery.set_aside.as_ref().map_or(0, |aside| aside.records),
            ..FieldReportMetrics::default()
        };
        let reports = decode_all(&config, &recovery, &mut metrics)?;
        let damage = recovery.damage;
        drop(recovery);
        let mut store = Self {
            storage,
            config,
            wal,
            reports,
            index: RetryIndex::new(),
            windows: Windows::new(),
            metrics,
            damage,
            reopen: ReopenBackoff::default(),
        };
        let undecodable = store.metrics.wal_undecodable_records > 0;
        store.prune(now_ms, undecodable).await?;
        store.load_sidecars().await?;
        tracing::info!(
            target: "esper_core::tamiyo",
            reports = store.reports.len(),
            retry_index_load_errors = store.metrics.retry_index_load_errors,
            window_load_errors = store.metrics.window_load_errors,
            "field reports loaded"
        );
        Ok(store)
    }

    /// Loads both sidecars; a failed load is counted and the sidecar rebuilt.
    async fn load_sidecars(&mut self) -> Result<(), TamiyoPersistenceError> {
        let index_path = self.config.index_path();
        let mut index = match load::<S, RetryIndex>(&self.storage, &index_path).await {
            Loaded::Found(index) => index,
            Loaded::Missing => RetryIndex::new(),
            Loaded::Failed(reason) => {
                tracing::warn!(target: "esper_core::tamiyo", reason, "retry index unreadable; rebuilt from the log");
                self.metrics.retry_index_load_errors += 1;
                RetryIndex::new()
            }
        };
        let retained: std::collections::BTreeSet<&str> = self.reports.iter().map(|r| r.report_id.as_str()).collect();
        index.retain(|report_id, _| retained.contains(report_id.as_str()));
        for report_id in retained {
            index.entry(report_id.to_owned()).or_default();
        }
        self.index = index;
        self.windows = match load::<S, Windows>(&self.storage, &self.config.windows_path()).await {
            Loaded::Found(windows) => windows,
            Loaded::Missing => Windows::new(),
            Loaded::Failed(reason) => {
                tracing::warn!(target: "esper_core::tamiyo", reason, "observation windows unreadable; starting empty");
                self.metrics.window_load_errors += 1;
                Windows::new()
            }
        };
        if self.metrics.retry_index_load_errors > 0 {
            save(&self.storage, &index_path, &self.index).await?;
        }
        if self.metrics.window_load_errors > 0 {
            save(&self.storage, &self.config.windows_path(), &self.windows).await?;
        }
        Ok(())
    }

    /// Appends `report` (its `issued_at` set to now if missing); returns once it is
    /// fsynced. The report enters the retry index as unpublished.
    pub async fn append(&mut self, mut report: FieldReport, now_ms: u64) -> Result<(), TamiyoPersistenceError> {
        if report.issued_at.is_none_or(|issued| issued.as_millis() == 0) {
            report.issued_at = Some(Timestamp::from_millis(now_ms));
        }
        // The planted `poisoned-log-never-reopens` bug skips the reopen: the
        // append below then refuses with `Poisoned`, as before issue 22.
        if self.wal.is_poisoned() && !self.config.wal.planted.armed(PlantedBug::PoisonedLogNeverReopens) {
            self.reopen_poisoned(now_ms).await?;
        }
        if let Err(error) = self.wal.append(&report.encode_to_vec()).await {
            if self.wal.is_poisoned() {
                self.reopen.failed(now_ms);
            }
            return Err(error.into());
        }
        self.index.entry(report.report_id.clone()).or_default();
        self.reports.push(report);
        Ok(())
    }

    /// Brings a poisoned log back: after a failed fsync the file's contents are
    /// unknown, so it is rewritten from the reports this store acknowledged (every
    /// one of them, nothing it refused) and reopened, once the backoff allows.
    /// Until then, appends are refused (not acknowledged) with the wait.
    async fn reopen_poisoned(&mut self, now_ms: u64) -> Result<(), TamiyoPersistenceError> {
        let path = self.config.log_path();
        if now_ms < self.reopen.next_at_ms {
            return Err(TamiyoPersistenceError::ReopenBackingOff {
                path,
                retry_in_ms: self.reopen.next_at_ms - now_ms,
            });
        }
        let attempt = self.reopen.failures;
        if let Err(error) = self.rewrite_and_reopen().await {
            self.reopen.failed(now_ms);
            tracing::warn!(target: "esper_core::tamiyo", attempt, %error, "tamiyo.field_reports.reopen_failed");
            return Err(error);
        }
        self.reopen = ReopenBackoff::default();
        self.metrics.wal_reopens_total += 1;
        tracing::warn!(target: "esper_core::tamiyo", attempt, reports = self.reports.len(), "tamiyo.field_reports.reopened");
        Ok(())
    }

    /// Sets the retry state of `report_id` (if retained) and saves the index.
    pub async fn update_retry(&mut self, report_id: &str, entry: RetryEntry) -> Result<(), TamiyoPersistenceError> {
        if let Some(slot) = self.index.get_mut(report_id) {
            *slot = entry;
            save(&self.storage, &self.config.index_path(), &self.index).await?;
        }
        Ok(())
    }

    /// Replaces the open observation windows and saves them.
    pub async fn set_windows(
        &mut self,
        windows: impl IntoIterator<Item = ObservationWindow>,
    ) -> Result<(), TamiyoPersistenceError> {
        self.windows = windows.into_iter().map(|window| (window.command_id.clone(), window)).collect();
        save(&self.storage, &self.config.windows_path(), &self.windows).await?;
        Ok(())
    }

    /// Drops reports older than the retention window and rewrites the log atomically.
    pub async fn compact(&mut self, now_ms: u64) -> Result<CompactionReport, TamiyoPersistenceError> {
        let before = self.reports.len();
        self.prune(now_ms, true).await?;
        let index_path = self.config.index_path();
        save(&self.storage, &index_path, &self.index).await?;
        Ok(CompactionReport { kept: self.reports.len(), dropped: before - self.reports.len() })
    }

    /// Drops expired reports; rewrites the log if any were dropped or `force`.
    async fn prune(&mut self, now_ms: u64, force: bool) -> Result<(), TamiyoPersistenceError> {
        let retention_ms = u64::try_from(self.config.retention.as_millis()).unwrap_or(u64::MAX);
        let cutoff_ms = now_ms.saturating_sub(retention_ms);
        let before = self.reports.len();
        self.reports.retain(|report| issued_ms(report, now_ms) >= cutoff_ms);
        let dropped = before - self.reports.len();
        self.metrics.retention_dropped_total += dropped as u64;
        let retained: std::collections::BTreeSet<&str> = self.reports.iter().map(|r| r.report_id.as_str()).collect();
        self.index.retain(|report_id, _| retained.contains(report_id.as_str()));
        if dropped == 0 && !force {
            return Ok(());
        }
        self.rewrite_and_reopen().await
    }

    /// Replaces the log with exactly the retained reports and reopens it.
    async fn rewrite_and_reopen(&mut self) -> Result<(), TamiyoPersistenceError> {
        let encoded: Vec<Vec<u8>> = self.reports.iter().map(Message::encode_to_vec).collect();
        let path = self.config.log_path();
        rewrite(&self.storage, &path, &encoded, &self.config.wal).await?;
        let (wal, recovery) = Wal::open(&self.storage, &path, self.config.wal).await?;
        // A disk that changed the file between the rewrite and the reopen (a bit
        // flip, a truncation) is the disk's fault, reported, not a panic.
        if recovery.records().len() != self.reports.len() {
            return Err(TamiyoPersistenceError::RewriteMismatch {
                path,
                written: self.reports.len(),
                read: recovery.records().len(),
            });
        }
        self.wal = wal;
        Ok(())
    }

    /// Retained reports, oldest first.
    pub fn reports(&self) -> &[FieldReport] {
        &self.reports
    }

    /// The retry index.
    pub fn index(&self) -> &RetryIndex {
        &self.index
    }

    /// The open observation windows.
    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// The damage cut from the log at open (non-strict mode), if any.
    pub fn damage(&self) -> Option<Damage> {
        self.damage
    }

    /// The counters, with the backlog computed now.
    pub fn metrics(&self) -> FieldReportMetrics {
        let backlog = self.index.values().filter(|entry| entry.is_backlog()).count() as u64;
        FieldReportMetrics { retry_backlog_total: backlog, ..self.metrics }
    }

    /// The configuration.
    pub fn config(&self) -> &FieldReportConfig {
        &self.config
    }
}

/// Decodes every recovered record; an undecodable one is an error (strict) or skipped
/// and counted (non-strict).
fn decode_all(
    config: &FieldReportConfig,
    recovery: &Recovery,
    metrics: &mut FieldReportMetrics,
) -> Result<Vec<FieldReport>, TamiyoPersistenceError> {
    let mut reports = Vec::with_capacity(recovery.records().len());
    for (index, (offset, bytes)) in recovery.records_with_offsets().enumerate() {
        match FieldReport::decode_closed(bytes) {
            Ok(report) => reports.push(report),
            Err(source) if config.wal.strict => {
                return Err(TamiyoPersistenceError::Decode { path: config.log_path(), index, offset, source });
            }
            Err(source) => {
                tracing::warn!(target: "esper_core::tamiyo", index, offset, error = %source, "undecodable record skipped");
                metrics.wal_undecodable_records += 1;
            }
        }
    }
    Ok(reports)
}
