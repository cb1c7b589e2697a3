//! Replies and their RESP2 / RESP3 encodings.
//!
//! Replies are encoded here rather than with `redis-protocol`'s encoder so that the
//! bytes on the wire are under our control: the differential test compares them with
//! real Redis byte for byte, and RESP3 maps must keep Redis's field order.

/// One reply, protocol-independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text` (the text starts with the error code: `ERR`, `WRONGTYPE`…). Bytes,
    /// not text: Redis echoes client bytes (command names, keys) as they came.
    Error(Vec<u8>),
    /// `:n`
    Int(i64),
    /// `$n bytes`
    Bulk(Vec<u8>),
    /// The null bulk string (`$-1`, RESP3 `_`).
    Nil,
    /// The null array (`*-1`, RESP3 `_`).
    NilArray,
    /// `*n ...`
    Array(Vec<Reply>),
    /// A map: a flat array in RESP2, `%n` in RESP3.
    Map(Vec<(Reply, Reply)>),
}

/// An error reply.
pub fn err(text: &str) -> Reply {
    Reply::Error(text.as_bytes().to_vec())
}

/// An error text assembled the way Redis's `printf`-style formatting does it:
/// client-supplied bytes are copied as they came, cut at their first NUL byte
/// (`%s` reads a C string) and, for `%.*s`, at a length.
#[derive(Debug, Clone, Default)]
pub struct ErrorText(Vec<u8>);

impl ErrorText {
    /// Starts with fixed text.
    pub fn new(text: &str) -> Self {
        Self(text.as_bytes().to_vec())
    }

    /// Appends fixed text.
    pub fn text(mut self, text: &str) -> Self {
        self.0.extend_from_slice(text.as_bytes());
        self
    }

    /// Appends a client argument as `%s` does.
    pub fn arg(self, bytes: &[u8]) -> Self {
        self.arg_max(bytes, usize::MAX)
    }

    /// Appends at most `max` bytes of a client argument, as `%.*s` does.
    pub fn arg_max(mut self, bytes: &[u8], max: usize) -> Self {
        let c_string = bytes.split(|byte| *byte == 0).next().unwrap_or_default();
        self.0.extend_from_slice(c_string.get(..max.min(c_string.len())).unwrap_or_default());
        self
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The error reply.
    pub fn reply(self) -> Reply {
        Reply::Error(self.0)
    }
}

/// `+OK`
pub fn ok() -> Reply {
    Reply::Simple("OK".to_owned())
}

/// A bulk string from text.
pub fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

/// A count as an integer reply.
pub fn count(value: usize) -> Reply {
    Reply::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Reply {
    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_))
    }

    /// Appends the encoding for protocol version `resp` (2 or 3) to `out`.
    pub fn encode(&self, resp: u8, out: &mut Vec<u8>) {
        match self {
            Self::Simple(text) => line(out, b'+', text.as_bytes()),
            Self::Error(text) => line(out, b'-', &sanitize(text)),
            Self::Int(value) => line(out, b':', value.to_string().as_bytes()),
            Self::Bulk(bytes) => {
                line(out, b'$', bytes.len().to_string().as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Self::Nil if resp >= 3 => out.extend_from_slice(b"_\r\n"),
            Self::NilArray if resp >= 3 => out.extend_from_slice(b"_\r\n"),
            Self::Nil => out.extend_from_slice(b"$-1\r\n"),
            Self::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Self::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                items.iter().for_each(|item| item.encode(resp, out));
            }
            Self::Map(pairs) => {
                let (marker, len) = if resp >= 3 { (b'%', pairs.len()) } else { (b'*', pairs.len() * 2) };
                line(out, marker, len.to_string().as_bytes());
                for (key, value) in pairs {
                    key.encode(resp, out);
                    value.encode(resp, out);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.push(marker);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// Redis replaces CR and LF in error texts with spaces so an error that quotes
/// client input cannot break the protocol.
fn sanitize(text: &[u8]) -> Vec<u8> {
    text.iter().copied().map(|byte| if byte == b'\r' || byte == b'\n' { b' ' } else { byte }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &Reply, resp: u8) -> String {
        let mut out = Vec::new();
        reply.encode(resp, &mut out);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn encodes_both_protocols() {
        let map = Reply::Map(vec![(bulk("a"), Reply::Int(1))]);
        assert_eq!(encoded(&map, 2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&map, 3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&Reply::NilArray, 2), "*-1\r\n");
        assert_eq!(encoded(&Reply::Nil, 3), "_\r\n");
        assert_eq!(encoded(&err("ERR a\r\nb"), 2), "-ERR a  b\r\n");
        let quoted = ErrorText::new("ERR '").arg(b"k\0ey").text("' '").arg_max(b"abc", 2).text("'").reply();
        assert_eq!(encoded(&quoted, 2), "-ERR 'k' 'ab'\r\n");
    }
}
