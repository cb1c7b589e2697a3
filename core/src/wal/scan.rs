//! Recovery scan: the longest valid prefix of a log, and what lies past it.
//!
//! Pure over bytes so the exhaustive tests and the benchmark exercise exactly what
//! [`super::Wal::open`] runs.

use std::fmt;
use std::ops::Range;

use super::frame::{FILE_HEADER_LEN, FRAME_HEADER_LEN, HeaderCheck, check_file_header, frame_checksum};

/// Why recovery stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageReason {
    /// The file ends inside its header.
    TornFileHeader,
    /// The header's magic or checksum is wrong.
    BadFileHeader,
    /// The file ends inside a frame's length and checksum.
    TornFrameHeader,
    /// The file ends inside a frame's payload.
    TornPayload,
    /// A frame's length exceeds the record bound.
    OversizedLength {
        /// The length read.
        length: u32,
        /// The bound.
        limit: u32,
    },
    /// A frame's checksum does not match its length and payload.
    ChecksumMismatch,
}

impl DamageReason {
    /// Whether this looks like a cut-off tail (as opposed to bytes that are wrong).
    pub fn is_truncation(self) -> bool {
        matches!(self, Self::TornFileHeader | Self::TornFrameHeader | Self::TornPayload)
    }

    /// Stable snake_case name for telemetry.
    pub fn name(self) -> &'static str {
        match self {
            Self::TornFileHeader => "torn_file_header",
            Self::BadFileHeader => "bad_file_header",
            Self::TornFrameHeader => "torn_frame_header",
            Self::TornPayload => "torn_payload",
            Self::OversizedLength { .. } => "oversized_length",
            Self::ChecksumMismatch => "checksum_mismatch",
        }
    }
}

impl fmt::Display for DamageReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TornFileHeader => formatter.write_str("the file ends inside the log header"),
            Self::BadFileHeader => formatter.write_str("the log header's magic or checksum is wrong"),
            Self::TornFrameHeader => formatter.write_str("the file ends inside a record's length and checksum"),
            Self::TornPayload => formatter.write_str("the file ends inside a record's payload"),
            Self::OversizedLength { length, limit } => {
                write!(formatter, "a record claims {length} bytes, over the limit of {limit}")
            }
            Self::ChecksumMismatch => formatter.write_str("a record's CRC32C does not match its bytes"),
        }
    }
}

/// Where the valid prefix ends, why, and how many bytes lie past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first byte not in the valid prefix.
    pub offset: u64,
    /// Why the byte there does not start a valid record.
    pub reason: DamageReason,
    /// Bytes from `offset` to the end of the file.
    pub dropped_bytes: u64,
}

/// The result of scanning a log's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Frames (payload ranges) of the valid prefix, then the damage, if any.
    Log {
        /// Payload byte ranges, in log order.
        frames: Vec<Range<usize>>,
        /// Length of the valid prefix (0 when even the header is missing or damaged).
        valid_len: u64,
        /// What lies past the valid prefix.
        damage: Option<Damage>,
    },
    /// An intact header of another format version: never truncated, never read.
    OtherVersion(u32),
}

/// Scans `bytes` to the longest valid prefix. `max_record_bytes` bounds a frame's length.
pub fn scan(bytes: &[u8], max_record_bytes: u32) -> Scan {
    let damage_at =
        |offset: usize, reason| Damage { offset: offset as u64, reason, dropped_bytes: (bytes.len() - offset) as u64 };
    let header = match bytes.first_chunk::<FILE_HEADER_LEN>() {
        Some(header) => header,
        None if bytes.is_empty() => return Scan::Log { frames: Vec::new(), valid_len: 0, damage: None },
        None => {
            return Scan::Log {
                frames: Vec::new(),
                valid_len: 0,
                damage: Some(damage_at(0, DamageReason::TornFileHeader)),
            };
        }
    };
    match check_file_header(header) {
        HeaderCheck::Valid => {}
        HeaderCheck::OtherVersion(version) => return Scan::OtherVersion(version),
        HeaderCheck::Damaged => {
            return Scan::Log {
                frames: Vec::new(),
                valid_len: 0,
                damage: Some(damage_at(0, DamageReason::BadFileHeader)),
            };
        }
    }
    let mut frames = Vec::new();
    let mut offset = FILE_HEADER_LEN;
    while offset < bytes.len() {
        match next_frame(bytes, offset, max_record_bytes) {
            Ok(payload) => {
                offset = payload.end;
                frames.push(payload);
            }
            Err(reason) => {
                return Scan::Log { frames, valid_len: offset as u64, damage: Some(damage_at(offset, reason)) };
            }
        }
    }
    Scan::Log { frames, valid_len: offset as u64, damage: None }
}

/// How many framed records `tail` holds: frames are walked by their length
/// fields, checksums unchecked, until a length runs past the end or over the
/// record bound. From the first intact frame behind a damage point, an estimate
/// of the records a bit flip cut off, for the operator's report.
pub fn framed_records(tail: &[u8], max_record_bytes: u32) -> u64 {
    let mut offset = 0_usize;
    let mut records = 0;
    while let Some(header) = tail.get(offset..).and_then(<[u8]>::first_chunk::<FRAME_HEADER_LEN>) {
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let end = offset + FRAME_HEADER_LEN + length as usize;
        if length > max_record_bytes || end > tail.len() {
            break;
        }
        records += 1;
        offset = end;
    }
    records
}

/// Where the first whole, intact frame (its checksum good) behind the damaged
/// first frame of `tail` starts, if any: then the tail holds acknowledged data a
/// reader can still use (a bit flip mid-file), where a torn or corrupt last
/// record (a crash mid-write) holds none. Every offset past the damaged frame's
/// header is tried, not only the one its length field points to: a flipped
/// length bit must not hide the records behind it. A false match needs a CRC32C
/// collision (one chance in 2^32 per offset), and costs only a tail set aside
/// that did not need to be.
pub fn intact_frame_behind(tail: &[u8], max_record_bytes: u32) -> Option<usize> {
    (FRAME_HEADER_LEN..tail.len()).find(|&offset| next_frame(tail, offset, max_record_bytes).is_ok())
}

/// The payload range of the frame starting at `offset`, or why there is none.
fn next_frame(bytes: &[u8], offset: usize, max_record_bytes: u32) -> Result<Range<usize>, DamageReason> {
    let rest = &bytes[offset..];
    let header = rest.first_chunk::<FRAME_HEADER_LEN>().ok_or(DamageReason::TornFrameHeader)?;
    let length_bytes = [header[0], header[1], header[2], header[3]];
    let length = u32::from_le_bytes(length_bytes);
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length > max_record_bytes {
        return Err(DamageReason::OversizedLength { length, limit: max_record_bytes });
    }
    let start = offset + FRAME_HEADER_LEN;
    let payload = bytes.get(start..start + length as usize).ok_or(DamageReason::TornPayload)?;
    if frame_checksum(length_bytes, payload) != stored {
        return Err(DamageReason::ChecksumMismatch);
    }
    Ok(start..start + length as usize)
}
