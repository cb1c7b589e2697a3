//! The trace: every `tracing` event of a run, as canonical text, folded into a hash.
//!
//! A canonical line is `<sim time> <host> <LEVEL> <target>: <field>=<value> …`, with
//! fields in the order the event declares them and values printed the same way on
//! every platform. The [`TraceSubscriber`] builds the lines, the [`TraceRecorder`] hashes
//! them (SHA-256 over each line plus `\n`) and keeps as much text as the
//! [`TraceMode`] asks for. turmoil's own internal events are left out: they describe
//! the simulator, not the system under test, and would only slow the hash down.

mod canonical;
mod recorder;
mod subscriber;

pub use canonical::format_sim_time;
pub use recorder::{EVENTS_PER_INSTANT_LIMIT, TraceRecorder, TraceSummary};
pub use subscriber::TraceSubscriber;

/// How much of the trace a run keeps besides its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceMode {
    /// Hash, event count and the last [`TAIL_LINES`] lines (for failure reports).
    Hash,
    /// Every line as well: for `--trace FILE` and the determinism check, which must
    /// name the first event where two runs part ways.
    Full,
}

/// Lines kept for failure reports in [`TraceMode::Hash`].
pub const TAIL_LINES: usize = 24;
