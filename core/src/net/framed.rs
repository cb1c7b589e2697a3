//! Length-prefixed frames over a byte stream.
//!
//! TCP delivers bytes, not messages. Every Esper request/response protocol that is not
//! RESP (Tamiyo's RPC, and any later point-to-point service) puts a frame around each
//! message: a `u32` big-endian length, then that many bytes. The reader checks the
//! length against a caller-given bound *before* allocating, so a corrupted or hostile
//! prefix can never make a peer allocate gigabytes, and it tells a clean close (EOF on
//! a frame boundary) apart from a frame cut short.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes in the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Default bound on one frame's payload: generous for any Leyline message (whose own
/// decode limit is 1 MiB) plus its signing header.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 1 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FramedError {
    #[error("frame length prefix cut short: got {read} of {LENGTH_PREFIX_LEN} bytes before the peer closed")]
    ShortPrefix { read: usize },
    #[error("frame declares {declared} bytes, over the {limit}-byte frame limit")]
    Oversized { declared: u64, limit: u32 },
    #[error("frame payload cut short: got {read} of {declared} bytes before the peer closed")]
    ShortPayload { read: usize, declared: u32 },
    #[error("frame I/O failed: {0}")]
    Io(#[from] io::Error),
}

impl FramedError {
    /// Stable snake_case name for counters and trace events.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ShortPrefix { .. } => "short_prefix",
            Self::Oversized { .. } => "oversized",
            Self::ShortPayload { .. } => "short_payload",
            Self::Io(_) => "io",
        }
    }
}

/// Reads one frame of at most `max_bytes`. `Ok(None)` means the peer closed cleanly
/// between frames; a close inside a frame is [`FramedError::ShortPrefix`] or
/// [`FramedError::ShortPayload`].
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max_bytes: u32) -> Result<Option<Vec<u8>>, FramedError> {
    let mut prefix = [0_u8; LENGTH_PREFIX_LEN];
    let read = read_until_full(reader, &mut prefix).await?;
    if read == 0 {
        return Ok(None);
    }
    if read < LENGTH_PREFIX_LEN {
        return Err(FramedError::ShortPrefix { read });
    }
    let declared = u32::from_be_bytes(prefix);
    if declared > max_bytes {
        return Err(FramedError::Oversized { declared: u64::from(declared), limit: max_bytes });
    }
    // `declared <= max_bytes`, a u32, so it fits a usize on every supported target.
    let mut payload = vec![0_u8; declared as usize];
    let read = read_until_full(reader, &mut payload).await?;
    if read < payload.len() {
        return Err(FramedError::ShortPayload { read, declared });
    }
    Ok(Some(payload))
}

/// Writes `payload` as one frame, refusing payloads over `max_bytes` (the peer would
/// refuse them anyway), and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
    max_bytes: u32,
) -> Result<(), FramedError> {
    let declared = u32::try_from(payload.len()).ok().filter(|&len| len <= max_bytes);
    let Some(declared) = declared else {
        return Err(FramedError::Oversized { declared: payload.len() as u64, limit: max_bytes });
    };
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_LEN + payload.len());
    frame.extend_from_slice(&declared.to_be_bytes());
    frame.extend_from_slice(payload);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Fills `buf` unless the stream ends first; returns how many bytes were read.
async fn read_until_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else { break };
        let read = reader.read(rest).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    debug_assert!(filled <= buf.len());
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[tokio::test]
    async fn round_trips_frames_and_reports_clean_close() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello", 16).await.expect("write");
        write_frame(&mut wire, b"", 16).await.expect("write empty");
        assert_eq!(wire, [framed(b"hello"), framed(b"")].concat());
        let mut reader = wire.as_slice();
        assert_eq!(read_frame(&mut reader, 16).await.expect("first").as_deref(), Some(&b"hello"[..]));
        assert_eq!(read_frame(&mut reader, 16).await.expect("second").as_deref(), Some(&b""[..]));
        assert!(read_frame(&mut reader, 16).await.expect("eof").is_none());
    }

    #[tokio::test]
    async fn refuses_oversized_prefix_before_allocating() {
        let mut reader: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2];
        let err = read_frame(&mut reader, 1024).await.expect_err("oversized");
        assert!(matches!(err, FramedError::Oversized { declared: 0xffff_ffff, limit: 1024 }), "{err}");
        assert!(err.to_string().contains("over the 1024-byte frame limit"), "{err}");
        let mut sink = Vec::new();
        let err = write_frame(&mut sink, &[0; 17], 16).await.expect_err("writer refuses too");
        assert!(matches!(err, FramedError::Oversized { declared: 17, limit: 16 }));
        assert!(sink.is_empty(), "nothing written for a refused frame");
    }

    #[tokio::test]
    async fn names_short_prefix_and_short_payload() {
        let mut reader: &[u8] = &[0, 0];
        let err = read_frame(&mut reader, 16).await.expect_err("short prefix");
        assert!(matches!(err, FramedError::ShortPrefix { read: 2 }), "{err}");
        let bytes = framed(b"abcdef");
        let mut reader = &bytes[..7];
        let err = read_frame(&mut reader, 16).await.expect_err("short payload");
        assert!(matches!(err, FramedError::ShortPayload { read: 3, declared: 6 }), "{err}");
        assert_eq!(err.kind(), "short_payload");
    }
}
