//! Tamiyo's field-report store: a WAL of Leyline `FieldReport`s plus two sidecars.
//!
//! * `field_reports.log` — every report Tamiyo issued, as a [`crate::wal`] log (one
//!   record per report, protobuf bytes), fsynced before the append returns.
//! * `field_reports.index.json` — per report: whether it was published to Oona, how
//!   often publishing was retried, when to try next, the last error, whether it was
//!   given up on. Written atomically (temp + rename).
//! * `field_reports.windows.json` — the observation windows still open (commands whose
//!   outcome Tamiyo is still watching). Written atomically.
//!
//! The log is the source of truth. A sidecar that fails to load is counted
//! (`tamiyo.field_reports.retry_index_load_errors`,
//! `tamiyo.field_reports.window_load_errors`) and rebuilt: the index from the log (every
//! retained report not yet known as published), the windows as none open (an open
//! window has no record in the log, exactly as Esper-Lite starts them empty).
//!
//! Reports older than the retention window (`TAMIYO_FIELD_REPORT_RETENTION_HOURS`,
//! default 24 h of sim time, by `issued_at`) are dropped on open and by
//! [`FieldReportStore::compact`], which rewrites the log atomically. With
//! `TAMIYO_WAL_STRICT_VALIDATION` on (the default) a damaged log is refused with
//! [`TamiyoPersistenceError`]; off, the damage is cut away and reported.

mod backup;
mod config;
mod error;
mod metrics;
mod sidecar;
mod sink;
mod store;

pub use backup::{BackupReport, backup, restore};
pub use config::{
    DEFAULT_RETENTION_HOURS, ENV_RETENTION_HOURS, ENV_STRICT_VALIDATION, FieldReportConfig, INDEX_FILE, LOG_FILE,
    WINDOWS_FILE,
};
pub use error::TamiyoPersistenceError;
pub use metrics::FieldReportMetrics;
pub use sidecar::{ObservationWindow, RetryEntry};
pub use sink::WalFieldReportSink;
pub use store::{CompactionReport, FieldReportStore};
