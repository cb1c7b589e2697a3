//! Stream entry ids (`<ms>-<seq>`) and their parsing, with Redis's exact rules.

use std::fmt;

use super::reply::{Reply, err};

/// The error Redis gives for any id it cannot read.
pub const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// A stream entry id. Ordered by milliseconds, then sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// The smallest id (`0-0`).
    pub const MIN: Self = Self { ms: 0, seq: 0 };
    /// The largest id.
    pub const MAX: Self = Self { ms: u64::MAX, seq: u64::MAX };

    /// A new id.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The next id in order, if any.
    pub fn successor(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| Self { ms, seq: 0 }),
        }
    }

    /// The previous id in order, if any.
    pub fn predecessor(self) -> Option<Self> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_sub(1).map(|ms| Self { ms, seq: u64::MAX }),
        }
    }

    /// The id as a bulk-string reply.
    pub fn reply(self) -> Reply {
        Reply::Bulk(self.to_string().into_bytes())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.ms, self.seq)
    }
}

/// Parses an unsigned integer as Redis's `string2ull` does for the inputs Esper
/// produces: decimal digits only, no sign, no overflow.
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Parses `ms[-seq]`; a missing sequence becomes `missing_seq`.
pub fn parse_id(text: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    if text.len() > 127 {
        return Err(err(INVALID_ID));
    }
    let (ms, seq) = match text.iter().position(|&byte| byte == b'-') {
        Some(dash) => (&text[..dash], Some(&text[dash + 1..])),
        None => (text, None),
    };
    let ms = parse_u64(ms).ok_or_else(|| err(INVALID_ID))?;
    let seq = match seq {
        Some(seq) => parse_u64(seq).ok_or_else(|| err(INVALID_ID))?,
        None => missing_seq,
    };
    Ok(StreamId { ms, seq })
}

/// Parses a range bound: `-`, `+`, `(id` (exclusive) or an id. `start` decides the
/// default sequence number and which way an exclusive bound moves.
pub fn parse_range_bound(text: &[u8], start: bool) -> Result<StreamId, Reply> {
    match text {
        b"-" => Ok(StreamId::MIN),
        b"+" => Ok(StreamId::MAX),
        [b'(', rest @ ..] => {
            let id = parse_id(rest, if start { 0 } else { u64::MAX })?;
            let moved = if start { id.successor() } else { id.predecessor() };
            let which = if start { "start" } else { "end" };
            moved.ok_or_else(|| err(&format!("ERR invalid {which} ID for the interval")))
        }
        _ => parse_id(text, if start { 0 } else { u64::MAX }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_redis() {
        assert_eq!(parse_id(b"5-3", 0), Ok(StreamId::new(5, 3)));
        assert_eq!(parse_id(b"5", 7), Ok(StreamId::new(5, 7)));
        assert!(parse_id(b"5-x", 0).is_err());
        assert!(parse_id(b"-1", 0).is_err());
        assert!(parse_id(b"", 0).is_err());
        assert_eq!(parse_range_bound(b"(5-3", true), Ok(StreamId::new(5, 4)));
        assert_eq!(parse_range_bound(b"(5-0", false), Ok(StreamId::new(4, u64::MAX)));
        assert!(parse_range_bound(b"(18446744073709551615-18446744073709551615", true).is_err());
    }
}
