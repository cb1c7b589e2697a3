//! The artifact library: compiled kernels, content-addressed, with the metadata of
//! the blueprint each was compiled from.
//!
//! Layout under the library root (all through the [`Storage`] seam):
//!
//! * `artifacts/<sha256>.kernel` — the kernel bytes, named by their SHA-256, so the
//!   same bytes are stored once and a reader can check what it read;
//! * `blueprints/<blueprint_id>.json` — an [`ArtifactRecord`]: the blueprint's Karn
//!   metadata and the digest of its kernel.
//!
//! A publication writes the artifact first and the record second, each with
//! [`write_atomic`]; a record is only ever durable after the artifact it names, so
//! a crash leaves at worst an artifact nobody points to (harmless: the next
//! publication of the same bytes reuses it). Esper-Lite kept the records in SQLite
//! behind an `urza_wal.json`; one atomically replaced file per blueprint gives the
//! same all-or-nothing publication without a second log.
//!
//! Opening the library reads every record into memory (the index the kernel server
//! and Tamiyo's metadata lookups answer from). A record that does not parse, or
//! that names a missing artifact, is left out and counted: the blueprint then reads
//! as "not built", and Tezzeret's next forge rebuilds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::karn::Blueprint;
use crate::leyline::BlueprintTier;
use crate::storage::{Storage, StorageError, read_if_exists, write_atomic};

/// Records larger than this are refused (they are a few hundred bytes).
const RECORD_LIMIT_BYTES: u64 = 64 * 1024;
/// Kernels larger than this are refused when read back.
pub const ARTIFACT_LIMIT_BYTES: u64 = 16 * 1024 * 1024;

/// What the library knows about one blueprint's kernel.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecord {
    pub blueprint_id: String,
    pub name: String,
    pub tier: BlueprintTier,
    pub risk: f32,
    pub quarantine_only: bool,
    pub approval_required: bool,
    pub parameter_count: u64,
    /// Lowercase hex SHA-256 of the kernel bytes (also their file name).
    pub artifact_sha256: String,
    pub artifact_bytes: u64,
    /// Digest of the kernel's probe output, for a loader to check its own run against.
    pub guard_digest: String,
}

impl ArtifactRecord {
    /// Where the kernel is, as Kasmina's prefetch answers name it.
    pub fn artifact_ref(&self) -> String {
        format!("urza://artifacts/{}.kernel", self.artifact_sha256)
    }
}

/// A kernel ready to be published: the blueprint it was compiled from, its bytes
/// and its guard digest.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelArtifact<'a> {
    pub blueprint: &'a Blueprint,
    pub bytes: Vec<u8>,
    pub guard_digest: String,
}

/// Why the library could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrzaError {
    #[error("urza library: {0}")]
    Storage(#[from] StorageError),
    /// The library has no kernel for the blueprint.
    #[error("urza library has no kernel for blueprint `{blueprint_id}`")]
    NotFound { blueprint_id: String },
    /// The kernel read back is not the one recorded.
    #[error("kernel {path} of blueprint `{blueprint_id}` is damaged: SHA-256 {found}, record says {expected}")]
    Corrupt { blueprint_id: String, path: PathBuf, expected: String, found: String },
    /// A record could not be encoded (never for the record types above).
    #[error("urza record for `{blueprint_id}` could not be encoded: {reason}")]
    Encode { blueprint_id: String, reason: String },
}

/// A record left out when the library was opened, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRecord {
    pub path: PathBuf,
    pub reason: String,
}

/// See the module docs. Cheap to clone; clones share the index.
#[derive(Debug, Clone)]
pub struct Library<S> {
    storage: S,
    root: PathBuf,
    index: Arc<Mutex<BTreeMap<String, ArtifactRecord>>>,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

impl<S: Storage> Library<S> {
    /// Opens (creating if needed) the library under `root`; returns it with the
    /// records it had to leave out.
    pub async fn open(storage: S, root: &Path) -> Result<(Self, Vec<DamagedRecord>), UrzaError> {
        let library = Self { storage, root: root.to_path_buf(), index: Arc::default() };
        library.storage.create_dir_all(&library.artifacts_dir()).await?;
        library.storage.create_dir_all(&library.records_dir()).await?;
        let artifacts = library.storage.list(&library.artifacts_dir()).await?;
        let mut damaged = Vec::new();
        let mut index = BTreeMap::new();
        for path in library.storage.list(&library.records_dir()).await? {
            if path.extension().is_none_or(|extension| extension != "json") {
                continue; // a `.tmp` left by a crash mid-publication
            }
            match library.load_record(&path, &artifacts).await? {
                Ok(record) => {
                    index.insert(record.blueprint_id.clone(), record);
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "urza: record left out");
                    damaged.push(DamagedRecord { path, reason });
                }
            }
        }
        tracing::info!(root = %root.display(), kernels = index.len(), damaged = damaged.len(), "urza: library open");
        *library.lock() = index;
        Ok((library, damaged))
    }

    /// Reads one record: an outer error is the disk's, an inner one the record's.
    async fn load_record(
        &self,
        path: &Path,
        artifacts: &[PathBuf],
    ) -> Result<Result<ArtifactRecord, String>, UrzaError> {
        let Some(bytes) = read_if_exists(&self.storage, path, RECORD_LIMIT_BYTES).await? else {
            return Ok(Err("vanished while the library was opened".to_owned()));
        };
        let record: ArtifactRecord = match serde_json::from_slice(&bytes) {
            Ok(record) => record,
            Err(error) => return Ok(Err(format!("not an artifact record: {error}"))),
        };
        if path.file_stem().is_none_or(|stem| *stem != *record.blueprint_id) {
            return Ok(Err(format!("holds the record of `{}`", record.blueprint_id)));
        }
        if !artifacts.contains(&self.artifact_path(&record.artifact_sha256)) {
            return Ok(Err(format!("its kernel {} is missing", record.artifact_sha256)));
        }
        Ok(Ok(record))
    }

    /// Publishes a kernel: artifact, then record, each durable before the next (see
    /// the module docs). Replaces an earlier kernel of the same blueprint.
    pub async fn publish(&self, kernel: KernelArtifact<'_>) -> Result<ArtifactRecord, UrzaError> {
        let blueprint = kernel.blueprint;
        let sha = sha256_hex(&kernel.bytes);
        write_atomic(&self.storage, &self.artifact_path(&sha), &kernel.bytes).await?;
        let record = ArtifactRecord {
            blueprint_id: blueprint.blueprint_id.clone(),
            name: blueprint.name.clone(),
            tier: blueprint.tier,
            risk: blueprint.risk,
            quarantine_only: blueprint.quarantine_only,
            approval_required: blueprint.approval_required,
            parameter_count: blueprint.parameter_count,
            artifact_sha256: sha,
            artifact_bytes: kernel.bytes.len() as u64,
            guard_digest: kernel.guard_digest,
        };
        let json = serde_json::to_vec(&record).map_err(|error| UrzaError::Encode {
            blueprint_id: record.blueprint_id.clone(),
            reason: error.to_string(),
        })?;
        write_atomic(&self.storage, &self.record_path(&record.blueprint_id), &json).await?;
        self.lock().insert(record.blueprint_id.clone(), record.clone());
        tracing::info!(blueprint = %record.blueprint_id, sha256 = %record.artifact_sha256, bytes = record.artifact_bytes, "urza: kernel published");
        Ok(record)
    }

    /// The kernel of `blueprint_id`, checked against its recorded digest.
    pub async fn read_kernel(&self, blueprint_id: &str) -> Result<Vec<u8>, UrzaError> {
        let not_found = || UrzaError::NotFound { blueprint_id: blueprint_id.to_owned() };
        let record = self.record(blueprint_id).ok_or_else(not_found)?;
        let path = self.artifact_path(&record.artifact_sha256);
        let bytes = read_if_exists(&self.storage, &path, ARTIFACT_LIMIT_BYTES).await?.ok_or_else(not_found)?;
        let found = sha256_hex(&bytes);
        if found != record.artifact_sha256 {
            return Err(UrzaError::Corrupt {
                blueprint_id: blueprint_id.to_owned(),
                path,
                expected: record.artifact_sha256,
                found,
            });
        }
        Ok(bytes)
    }
}

impl<S> Library<S> {
    /// The record of `blueprint_id`, if its kernel is in the library.
    pub fn record(&self, blueprint_id: &str) -> Option<ArtifactRecord> {
        self.lock().get(blueprint_id).cloned()
    }

    /// Whether the library holds a kernel of `blueprint_id`.
    pub fn contains(&self, blueprint_id: &str) -> bool {
        self.lock().contains_key(blueprint_id)
    }

    /// The blueprints with a kernel, in id order.
    pub fn blueprint_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The library's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    fn records_dir(&self) -> PathBuf {
        self.root.join("blueprints")
    }

    fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.artifacts_dir().join(format!("{sha256}.kernel"))
    }

    fn record_path(&self, blueprint_id: &str) -> PathBuf {
        self.records_dir().join(format!("{blueprint_id}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ArtifactRecord>> {
        // Held only for map operations, never across an await; a panic leaves a valid map.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
