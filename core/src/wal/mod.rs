//! The write-ahead log format every Esper subsystem persists through.
//!
//! A log is a file header (magic, format version, checksum) followed by records, each
//! framed as length ‖ CRC32C ‖ payload ([`frame`]). Opening a log recovers it: the
//! scan ([`scan`]) finds the longest valid prefix; whatever follows — a torn tail
//! after a crash, a flipped bit, a truncation — is either refused with a typed
//! [`PersistenceError`] naming file and offset (strict mode) or truncated away and
//! reported in the [`Recovery`] and the trace (non-strict mode), the damaged tail
//! first kept in `<log>.damaged-<offset>` ([`SetAside`]). A damaged file header is
//! refused in both modes and the file left as it was.
//!
//! Appends are acknowledged only after their fsync. [`Wal::append_batch`] writes a
//! batch with one fsync; [`group_commit`] lets many tasks share those fsyncs.
//!
//! Architecture invariant: the WAL reaches files only through [`crate::storage`], so
//! the sim disk's crashes and faults exercise exactly this code.

mod config;
mod error;
pub mod frame;
pub mod group_commit;
mod log;
mod recovery;
pub mod rewrite;
pub mod scan;

pub use config::{DEFAULT_MAX_BATCH_RECORDS, DEFAULT_MAX_LOG_BYTES, DEFAULT_MAX_RECORD_BYTES, WalConfig};
pub use error::PersistenceError;
pub use log::{Wal, inspect};
pub use recovery::{Recovery, SetAside};
pub use scan::{Damage, DamageReason};

/// The `tracing` target of every event the WAL logs: recoveries, cuts, set-aside
/// tails and group commits — what an operator (or a drill's log check) filters on.
pub const LOG_TARGET: &str = "esper_core::wal";
