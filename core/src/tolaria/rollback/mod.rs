//! Rollback: putting the model back to a known-good state under a deadline.
//!
//! Two tiers, tried in order: the in-memory [`FastCache`] of recent snapshots, then
//! the last checkpoint on storage (`restore.rs`).

mod fast_cache;
mod restore;

pub use fast_cache::{FAST_CACHE_DEFAULT_BYTES, FastCache};
pub use restore::RollbackOutcome;
