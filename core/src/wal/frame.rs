//! The on-disk format: a file header, then framed records.
//!
//! ```text
//! file   := header frame*
//! header := magic "ESPERWAL" (8) ‖ version u32 LE (4) ‖ crc32c(magic ‖ version) u32 LE (4)
//! frame  := length u32 LE (4) ‖ crc32c(length ‖ payload) u32 LE (4) ‖ payload (length bytes)
//! ```
//!
//! The checksum covers the length as well as the payload, so a flipped length bit
//! cannot make a frame silently swallow its neighbours: either the length now points
//! past the end of the file (torn) or the checksum no longer matches (corrupt).

/// First bytes of every log.
pub const MAGIC: [u8; 8] = *b"ESPERWAL";
/// The format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the file header.
pub const FILE_HEADER_LEN: usize = 16;
/// Bytes of a frame before its payload.
pub const FRAME_HEADER_LEN: usize = 8;

/// The file header for [`FORMAT_VERSION`].
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0; FILE_HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What a file header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// Ours, in the version we read.
    Valid,
    /// Intact (checksum matches) but written by another format version.
    OtherVersion(u32),
    /// Wrong magic or checksum.
    Damaged,
}

/// Checks the first [`FILE_HEADER_LEN`] bytes of a log.
pub fn check_file_header(header: &[u8; FILE_HEADER_LEN]) -> HeaderCheck {
    let crc = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if header[..8] != MAGIC || crc32c::crc32c(&header[..12]) != crc {
        return HeaderCheck::Damaged;
    }
    match u32::from_le_bytes([header[8], header[9], header[10], header[11]]) {
        FORMAT_VERSION => HeaderCheck::Valid,
        other => HeaderCheck::OtherVersion(other),
    }
}

/// The checksum stored in a frame for `payload`.
pub fn frame_checksum(length: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&length), payload)
}

/// Appends the frame for `payload` to `out`. The caller has checked the length bound.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    assert_eq!(length as usize, payload.len(), "record length was bounds-checked by the caller");
    let length = length.to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&frame_checksum(length, payload).to_le_bytes());
    out.extend_from_slice(payload);
}
