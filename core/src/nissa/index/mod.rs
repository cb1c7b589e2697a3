//! The document index: every ingested telemetry packet, system state packet and
//! field report as a JSON document, for search.
//!
//! [`DocumentIndex`] has two implementations: [`ElasticIndex`], an
//! Elasticsearch-compatible HTTP client (bulk requests, per-document fallback),
//! used when `NISSA_ELASTICSEARCH_URL` is set, and [`MemoryIndex`], bounded and
//! lost on restart. [`IndexRouter`] sends batches to the first and falls back to
//! the second — with a warning when the fallback becomes active — when no URL is
//! configured or the server fails.

mod elastic;
mod memory;
mod router;

pub use elastic::ElasticIndex;
pub use memory::MemoryIndex;
pub use router::{IndexRouter, IndexStatus};

use std::future::Future;

use crate::net::http1::HttpError;

/// Esper-Lite's indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexName {
    Telemetry,
    SystemState,
    FieldReport,
}

impl IndexName {
    /// The index's name on the server.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::SystemState => "system_state",
            Self::FieldReport => "field_report",
        }
    }
}

/// One document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub index: IndexName,
    /// The message's own id (packet or report id), so a redelivered message
    /// overwrites rather than duplicates; empty lets the server choose.
    pub id: String,
    pub body: serde_json::Value,
}

/// Why documents were not indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index server unreachable: {0}")]
    Http(#[from] HttpError),
    #[error("index server refused {} of {total} documents (last: HTTP {status}: {detail})", failed.len())]
    Refused { failed: Vec<usize>, total: usize, status: u16, detail: String },
}

impl IndexError {
    /// Positions in the batch that were not indexed.
    pub fn failed(&self, total: usize) -> Vec<usize> {
        match self {
            Self::Http(_) => (0..total).collect(),
            Self::Refused { failed, .. } => failed.clone(),
        }
    }
}

/// Somewhere documents can be indexed.
pub trait DocumentIndex: Send {
    /// `memory` or `elasticsearch`, for metrics and health.
    fn backend(&self) -> &'static str;

    /// Indexes a batch; on error, says which documents did not make it.
    fn index_batch(&mut self, documents: &[Document]) -> impl Future<Output = Result<(), IndexError>> + Send;
}
