//! `WalConfig`: strictness and the bounds every log enforces.

use crate::planted::Planted;

/// How a log recovers and how large it may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalConfig {
    /// Refuse a damaged log (`true`) or cut it back to its valid prefix (`false`).
    pub strict: bool,
    /// Largest record payload accepted on append and believed on recovery.
    pub max_record_bytes: u32,
    /// Largest log recovery will load and appends will grow.
    pub max_log_bytes: u64,
    /// Most records one group-commit batch (one fsync) carries.
    pub max_batch_records: usize,
    /// The planted bug a drill arms (test builds only; see [`crate::planted`]).
    pub planted: Planted,
}

/// 1 MiB: far above any Leyline message, far below what would make recovery slow.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 1 << 20;
/// 256 MiB: recovery reads the whole log into memory.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 256 << 20;
/// 1024 records per fsync.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 1024;

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            strict: true,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            planted: Planted::NONE,
        }
    }
}

impl WalConfig {
    /// The defaults with the given strictness.
    pub fn with_strict(strict: bool) -> Self {
        Self { strict, ..Self::default() }
    }
}
