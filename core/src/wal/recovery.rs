//! `Recovery`: what opening a log found.

use std::ops::Range;
use std::path::PathBuf;

use super::frame::FRAME_HEADER_LEN;
use super::scan::Damage;

/// The records a log held when it was opened, and the damage cut away (non-strict
/// mode) past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    bytes: Vec<u8>,
    frames: Vec<Range<usize>>,
    /// Damage found past the valid prefix; in non-strict mode it has been truncated away.
    pub damage: Option<Damage>,
    /// Where non-strict recovery kept the damaged tail before truncating it.
    pub set_aside: Option<SetAside>,
}

/// A damaged tail kept in `<log>.damaged-<offset>` before the log was truncated:
/// a bit flip mid-file leaves intact, acknowledged records behind it, which an
/// operator can still read back from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// The file holding the tail, byte for byte.
    pub path: PathBuf,
    /// Bytes set aside.
    pub bytes: u64,
    /// Framed records in them: the damaged one, then those walked from the first
    /// intact frame behind it (see `scan::intact_frame_behind`, `scan::framed_records`).
    pub records: u64,
}

impl Recovery {
    pub(super) fn new(bytes: Vec<u8>, frames: Vec<Range<usize>>, damage: Option<Damage>) -> Self {
        debug_assert!(frames.iter().all(|frame| frame.end <= bytes.len()));
        Self { bytes, frames, damage, set_aside: None }
    }

    /// The recovered record payloads, oldest first (`records().len()` counts them).
    pub fn records(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.frames.iter().map(|frame| &self.bytes[frame.clone()])
    }

    /// The recovered records with the file offset of each one's frame.
    pub fn records_with_offsets(&self) -> impl ExactSizeIterator<Item = (u64, &[u8])> + '_ {
        self.frames.iter().map(|frame| ((frame.start - FRAME_HEADER_LEN) as u64, &self.bytes[frame.clone()]))
    }
}
