//! The store's counters, under Esper-Lite's metric names.

/// Counters since the store was opened (load errors are counted at open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldReportMetrics {
    /// The retry index failed to load and was rebuilt from the log.
    pub retry_index_load_errors: u64,
    /// The windows sidecar failed to load and was reset.
    pub window_load_errors: u64,
    /// Reports not yet published and not given up on.
    pub retry_backlog_total: u64,
    /// Bytes of damage cut from the log at open (non-strict mode).
    pub wal_truncated_bytes: u64,
    /// Checksummed records that did not decode and were skipped (non-strict mode).
    pub wal_undecodable_records: u64,
    /// Reports dropped for being older than the retention window.
    pub retention_dropped_total: u64,
    /// Times a log poisoned by a failed fsync was rewritten and reopened.
    pub wal_reopens_total: u64,
}

impl FieldReportMetrics {
    /// `(metric name, value)` pairs, names as in Esper-Lite.
    pub fn points(&self) -> [(&'static str, u64); 6] {
        [
            ("tamiyo.field_reports.retry_index_load_errors", self.retry_index_load_errors),
            ("tamiyo.field_reports.window_load_errors", self.window_load_errors),
            ("tamiyo.field_reports.retry_backlog_total", self.retry_backlog_total),
            ("tamiyo.field_reports.wal_truncated_bytes", self.wal_truncated_bytes),
            ("tamiyo.field_reports.wal_undecodable_records", self.wal_undecodable_records),
            ("tamiyo.field_reports.retention_dropped_total", self.retention_dropped_total),
        ]
    }
}
