//! The JSON sidecars: retry index and observation windows, replaced atomically.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::{Storage, StorageError, read_if_exists, write_atomic};

use super::config::SIDECAR_LIMIT_BYTES;

/// Publication state of one report (Esper-Lite's index entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryEntry {
    /// Published to Oona.
    pub published: bool,
    /// Publish attempts that failed so far.
    pub retry_count: u32,
    /// Unix ms of the next attempt.
    pub next_attempt_ms: u64,
    /// The last publish error, if any.
    pub last_error: Option<String>,
    /// Given up on after too many retries.
    pub dropped: bool,
}

impl RetryEntry {
    /// Still waiting to be published.
    pub fn is_backlog(&self) -> bool {
        !self.published && !self.dropped
    }
}

/// A command whose outcome Tamiyo is still watching (`TAMIYO_FR_OBS_WINDOW_EPOCHS`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationWindow {
    /// The adaptation command observed.
    pub command_id: String,
    /// The seed it acted on.
    pub seed_id: String,
    /// Unix ms when the window opened.
    pub opened_at_ms: u64,
    /// Epochs to observe before reporting.
    pub target_epochs: u32,
    /// Epochs observed so far.
    pub observed_epochs: u32,
}

/// The retry index: report id → entry.
pub type RetryIndex = BTreeMap<String, RetryEntry>;
/// The open windows: command id → window.
pub type Windows = BTreeMap<String, ObservationWindow>;

/// What loading a sidecar found.
#[derive(Debug)]
pub(super) enum Loaded<T> {
    /// Parsed.
    Found(T),
    /// No such file (a fresh store, or never written).
    Missing,
    /// Present but unreadable or not valid JSON of the expected shape.
    Failed(String),
}

/// Loads the sidecar at `path`; failures are data for the caller to count, not errors.
pub(super) async fn load<S: Storage, T: DeserializeOwned>(storage: &S, path: &Path) -> Loaded<T> {
    match read_if_exists(storage, path, SIDECAR_LIMIT_BYTES).await {
        Ok(None) => Loaded::Missing,
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(value) => Loaded::Found(value),
            Err(error) => Loaded::Failed(format!("{}: {error}", path.display())),
        },
        Err(error) => Loaded::Failed(error.to_string()),
    }
}

/// Replaces the sidecar at `path` with `value`, atomically.
pub(super) async fn save<S: Storage, T: Serialize>(storage: &S, path: &Path, value: &T) -> Result<(), StorageError> {
    // Serializing string-keyed maps of plain structs cannot fail.
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    write_atomic(storage, path, &bytes).await
}
