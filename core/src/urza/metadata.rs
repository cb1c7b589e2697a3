//! Tamiyo's metadata lookups answered from the library: a blueprint Tamiyo may
//! germinate is one whose kernel Urza holds, with the risk Karn gave it.

use crate::storage::Storage;
use crate::tamiyo::{BlueprintMetadata, BlueprintMetadataSource};

use super::library::{ArtifactRecord, Library};

impl From<&ArtifactRecord> for BlueprintMetadata {
    fn from(record: &ArtifactRecord) -> Self {
        Self {
            blueprint_id: record.blueprint_id.clone(),
            name: record.name.clone(),
            tier: record.tier,
            risk: record.risk,
            quarantine_only: record.quarantine_only,
            approval_required: record.approval_required,
        }
    }
}

/// A blueprint without a kernel is unknown to Tamiyo (and so quarantined): Kasmina
/// could not load it anyway.
impl<S: Storage> BlueprintMetadataSource for Library<S> {
    async fn fetch(&self, blueprint_id: &str) -> Option<BlueprintMetadata> {
        self.record(blueprint_id).as_ref().map(BlueprintMetadata::from)
    }
}
