//! Where field reports go.
//!
//! Esper-Lite's Tamiyo appended every report to its field-report WAL before anything
//! else could lose it. The service writes through this trait, so the WAL
//! (`tamiyo::field_reports`) and the in-memory log used by tests and the sim are
//! interchangeable. A sink that fails does not stop the command: the failure is
//! counted and reported as an event, the report is lost, and training goes on.

use crate::leyline::FieldReport;

/// Why a report was not stored.
#[derive(Debug, thiserror::Error)]
pub enum FieldReportSinkError {
    #[error("field report sink is full ({capacity} reports); report `{report_id}` was not stored")]
    Full { capacity: usize, report_id: String },
    #[error("field report `{report_id}` could not be persisted: {source}")]
    Persist {
        report_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Stores field reports, one per issued command, in order.
#[allow(async_fn_in_trait, reason = "single-threaded runtimes, as the Tolaria ports")]
pub trait FieldReportSink {
    /// Stores `report`; returns once it is as durable as this sink makes anything.
    async fn record(&mut self, report: FieldReport) -> Result<(), FieldReportSinkError>;
}

/// Keeps reports in memory, up to a bound.
#[derive(Debug, Clone)]
pub struct MemoryFieldReportSink {
    reports: Vec<FieldReport>,
    capacity: usize,
}

impl MemoryFieldReportSink {
    /// A sink holding at most `capacity` reports.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a field report sink needs room for one report");
        Self { reports: Vec::new(), capacity }
    }

    /// The reports stored so far, oldest first.
    pub fn reports(&self) -> &[FieldReport] {
        &self.reports
    }
}

impl Default for MemoryFieldReportSink {
    /// Room for 10 000 reports: hours of steps in a test or a sim run.
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl FieldReportSink for MemoryFieldReportSink {
    async fn record(&mut self, report: FieldReport) -> Result<(), FieldReportSinkError> {
        if self.reports.len() >= self.capacity {
            return Err(FieldReportSinkError::Full { capacity: self.capacity, report_id: report.report_id });
        }
        self.reports.push(report);
        Ok(())
    }
}
