//! Sends each batch to the configured index, falling back to memory.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::{IntCounterVec, IntGauge};

use super::{Document, DocumentIndex, IndexName, MemoryIndex};

/// Where documents are going, for `/healthz` and `/metrics/summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexStatus {
    /// `elasticsearch` when configured, else `memory`.
    pub backend: String,
    /// Whether documents are going to memory instead of the configured backend.
    pub fallback_active: bool,
    /// Documents the configured backend took.
    pub indexed: u64,
    /// Documents held by the in-memory index, per index.
    pub memory_documents: BTreeMap<IndexName, usize>,
}

/// The configured index (if any) with the in-memory fallback.
#[derive(Debug)]
pub struct IndexRouter<E> {
    primary: Option<E>,
    memory: MemoryIndex,
    status: IndexStatus,
    documents: IntCounterVec,
    fallback_gauge: IntGauge,
}

impl<E: DocumentIndex> IndexRouter<E> {
    /// Routes to `primary`, or only to memory when it is `None` (with a warning,
    /// since documents are then lost on restart and not searchable elsewhere).
    pub(in crate::nissa) fn new(primary: Option<E>, memory: MemoryIndex, exporter: &crate::nissa::Exporter) -> Self {
        let backend = primary.as_ref().map_or("memory", DocumentIndex::backend).to_owned();
        let fallback_active = primary.is_none();
        if fallback_active {
            tracing::warn!(
                "nissa: no document index configured (NISSA_ELASTICSEARCH_URL); keeping documents in memory"
            );
        }
        let router = Self {
            primary,
            memory,
            status: IndexStatus { backend, fallback_active, ..IndexStatus::default() },
            documents: exporter.index_documents.clone(),
            fallback_gauge: exporter.index_fallback_active.clone(),
        };
        router.fallback_gauge.set(i64::from(fallback_active));
        router
    }

    /// Indexes `documents`: on the primary, and whatever it did not take in memory.
    pub async fn store(&mut self, documents: Vec<Document>) {
        if documents.is_empty() {
            return;
        }
        let failed: BTreeSet<usize> = match self.primary.as_mut() {
            None => (0..documents.len()).collect(),
            Some(primary) => match primary.index_batch(&documents).await {
                Ok(()) => BTreeSet::new(),
                Err(error) => {
                    tracing::warn!(%error, "nissa: document index failed");
                    error.failed(documents.len()).into_iter().collect()
                }
            },
        };
        let primary_backend = self.primary.as_ref().map(DocumentIndex::backend);
        for (position, document) in documents.into_iter().enumerate() {
            let index = document.index.as_str();
            if failed.contains(&position) {
                let outcome = if primary_backend.is_some() { "fallback" } else { "stored" };
                self.documents.with_label_values(&[index, "memory", outcome]).inc();
                self.memory.insert(document);
            } else if let Some(backend) = primary_backend {
                self.documents.with_label_values(&[index, backend, "stored"]).inc();
                self.status.indexed += 1;
            }
        }
        if primary_backend.is_some() {
            self.set_fallback(!failed.is_empty());
        }
        self.status.memory_documents = self.memory.counts();
    }

    fn set_fallback(&mut self, active: bool) {
        if active != self.status.fallback_active {
            if active {
                tracing::warn!("nissa: document index unavailable; in-memory fallback active");
            } else {
                tracing::warn!("nissa: document index reachable again; in-memory fallback off");
            }
        }
        self.status.fallback_active = active;
        self.fallback_gauge.set(i64::from(active));
    }

    /// The current status.
    pub fn status(&self) -> &IndexStatus {
        &self.status
    }

    /// The in-memory index.
    pub fn memory(&self) -> &MemoryIndex {
        &self.memory
    }
}
