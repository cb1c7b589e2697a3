//! The in-memory index: the fallback when no search server is configured or
//! reachable. Bounded per index (oldest out); gone when Nissa restarts.

use std::collections::{BTreeMap, VecDeque};

use super::{Document, DocumentIndex, IndexError, IndexName};

/// Documents in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryIndex {
    capacity: usize,
    documents: BTreeMap<IndexName, VecDeque<Document>>,
}

impl MemoryIndex {
    /// An index keeping the last `capacity` documents of each index.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), documents: BTreeMap::new() }
    }

    /// Stores `document`.
    pub fn insert(&mut self, document: Document) {
        let held = self.documents.entry(document.index).or_default();
        held.push_back(document);
        while held.len() > self.capacity {
            held.pop_front();
        }
    }

    /// Documents held in `index`, oldest first.
    pub fn documents(&self, index: IndexName) -> impl Iterator<Item = &Document> {
        self.documents.get(&index).into_iter().flatten()
    }

    /// How many documents each index holds.
    pub fn counts(&self) -> BTreeMap<IndexName, usize> {
        self.documents.iter().map(|(index, held)| (*index, held.len())).collect()
    }
}

impl DocumentIndex for MemoryIndex {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn index_batch(&mut self, documents: &[Document]) -> Result<(), IndexError> {
        documents.iter().cloned().for_each(|document| self.insert(document));
        Ok(())
    }
}
