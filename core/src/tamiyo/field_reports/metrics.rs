//! The store's counters, under Esper-Lite's metric names.

use crate::leyline::counters::leyline_counters;

leyline_counters! {
    /// Counters since the store was opened (load errors are counted at open).
    pub struct FieldReportMetrics {
        /// The retry index failed to load and was rebuilt from the log.
        retry_index_load_errors => "tamiyo.field_reports.retry_index_load_errors",
        /// The windows sidecar failed to load and was reset.
        window_load_errors => "tamiyo.field_reports.window_load_errors",
        /// Reports not yet published and not given up on.
        retry_backlog_total => "tamiyo.field_reports.retry_backlog_total",
        /// Bytes of damage cut from the log at open (non-strict mode).
        wal_truncated_bytes => "tamiyo.field_reports.wal_truncated_bytes",
        /// Records in the damaged tail set aside in `<log>.damaged-<offset>` at open
        /// (non-strict mode, when whole records lay behind the damage).
        wal_set_aside_records => "tamiyo.field_reports.wal_set_aside_records",
        /// Checksummed records that did not decode and were skipped (non-strict mode).
        wal_undecodable_records => "tamiyo.field_reports.wal_undecodable_records",
        /// Reports dropped for being older than the retention window.
        retention_dropped_total => "tamiyo.field_reports.retention_dropped_total",
        /// Times a log poisoned by a failed fsync was rewritten and reopened.
        wal_reopens_total => "tamiyo.field_reports.wal_reopens_total",
    }
}
