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
    /// `-text` (the text starts with the error code: `ERR`, `WRONGTYPE`…)
    Error(String),
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
    Reply::Error(text.to_owned())
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
fn sanitize(text: &str) -> Vec<u8> {
    text.bytes().map(|byte| if byte == b'\r' || byte == b'\n' { b' ' } else { byte }).collect()
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
    }
}
