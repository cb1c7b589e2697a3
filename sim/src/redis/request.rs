//! Reading commands off the wire: RESP multibulk (decoded by `redis-protocol`) or
//! inline commands, within the server's bounds.

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};

/// Input bounds. Requests past them get a protocol error and the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string accepted, bytes.
    pub max_bulk: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Largest inline command line, bytes (Redis: 64 KiB).
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bulk: 1 << 20, max_args: 4096, max_inline: 64 * 1024 }
    }
}

impl Limits {
    /// The most bytes a pending, incomplete request may occupy.
    pub fn max_buffered(&self) -> usize {
        self.max_bulk.saturating_mul(4).max(self.max_inline) + 64
    }
}

/// One parsed request: the arguments, possibly none (an empty line or `*0`).
pub type Args = Vec<Vec<u8>>;

/// Takes one request off the front of `buf`: `Ok(Some((args, consumed)))`,
/// `Ok(None)` when more bytes are needed, or the text of a protocol error.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, String> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => multibulk(buf, limits),
        Some(_) => inline(buf, limits),
    }
}

fn multibulk(buf: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, String> {
    if let Some(end) = buf.iter().position(|byte| *byte == b'\n') {
        let header = buf.get(1..end.saturating_sub(1)).unwrap_or_default();
        let declared: i64 =
            std::str::from_utf8(header).ok().and_then(|text| text.parse().ok()).ok_or("invalid multibulk length")?;
        if declared > i64::try_from(limits.max_args).unwrap_or(i64::MAX) {
            return Err("invalid multibulk length".to_owned());
        }
    } else if buf.len() > limits.max_inline {
        return Err("too big mbulk count string".to_owned());
    }
    let Some((frame, used)) = decode(buf).map_err(|error| error.details().to_owned())? else {
        return Ok(None);
    };
    let items = match frame {
        OwnedFrame::Array(items) => items,
        OwnedFrame::Null => Vec::new(),
        other => return Err(format!("expected '*', got '{}'", char::from(other.kind().to_byte()))),
    };
    let mut args = Vec::with_capacity(items.len());
    for item in items {
        match item {
            OwnedFrame::BulkString(bytes) if bytes.len() <= limits.max_bulk => args.push(bytes),
            OwnedFrame::BulkString(_) => return Err("invalid bulk length".to_owned()),
            other => return Err(format!("expected '$', got '{}'", char::from(other.kind().to_byte()))),
        }
    }
    Ok(Some((args, used)))
}

fn inline(buf: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, String> {
    let Some(end) = buf.iter().position(|byte| *byte == b'\n') else {
        return if buf.len() > limits.max_inline { Err("too big inline request".to_owned()) } else { Ok(None) };
    };
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    if line.iter().any(|byte| *byte == b'"' || *byte == b'\'') {
        return Err("quoted inline requests are not supported by the simulated server".to_owned());
    }
    let args: Args = line.split(u8::is_ascii_whitespace).filter(|word| !word.is_empty()).map(<[u8]>::to_vec).collect();
    if args.len() > limits.max_args {
        return Err("invalid multibulk length".to_owned());
    }
    Ok(Some((args, end + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multibulk_inline_and_partial_input() {
        let limits = Limits::default();
        let request = b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n";
        assert_eq!(parse(request, &limits), Ok(Some((vec![b"ECHO".to_vec(), b"hi".to_vec()], request.len()))));
        assert_eq!(parse(&request[..10], &limits), Ok(None));
        assert_eq!(parse(b"PING  x\r\n", &limits), Ok(Some((vec![b"PING".to_vec(), b"x".to_vec()], 9))));
        assert!(parse(b"*1\r\n:5\r\n", &limits).is_err());
        assert!(parse(b"*99999999\r\n", &limits).is_err());
    }
}
