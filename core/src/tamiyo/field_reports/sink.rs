//! The field-report store as the Tamiyo service's [`FieldReportSink`].

use crate::clock::UnixClock;
use crate::leyline::FieldReport;
use crate::storage::Storage;
use crate::tamiyo::sink::{FieldReportSink, FieldReportSinkError};

use super::store::FieldReportStore;

/// Persists every report the service issues in the WAL before the command goes out,
/// as Esper-Lite's Tamiyo did; reports without `issued_at` are stamped from `clock`.
#[derive(Debug)]
pub struct WalFieldReportSink<S: Storage> {
    store: FieldReportStore<S>,
    clock: UnixClock,
}

impl<S: Storage> WalFieldReportSink<S> {
    /// A sink writing to `store`, telling time by `clock` (virtual in the sim).
    pub fn new(store: FieldReportStore<S>, clock: UnixClock) -> Self {
        Self { store, clock }
    }

    /// The store, for reads, retries and compaction.
    pub fn store(&mut self) -> &mut FieldReportStore<S> {
        &mut self.store
    }
}

impl<S: Storage> FieldReportSink for WalFieldReportSink<S> {
    async fn record(&mut self, report: FieldReport) -> Result<(), FieldReportSinkError> {
        let report_id = report.report_id.clone();
        self.store
            .append(report, self.clock.now_ms())
            .await
            .map_err(|error| FieldReportSinkError::Persist { report_id, source: Box::new(error) })
    }
}
