//! Reading commands off the wire exactly as Redis 7.0's `processInputBuffer`
//! does, malformed input included.
//!
//! A request is a RESP multibulk (`*<n>\r\n$<len>\r\n<bytes>\r\n…`) when its
//! first byte is `*`, otherwise an inline command split like `sdssplitargs`.
//! Redis's quirks are kept because the malformed-input differential test holds
//! the simulated server to them: lines are searched for with `strchr`, so a NUL
//! byte hides everything after it until more input arrives; the two bytes after a
//! line's `\r` and after a bulk payload are skipped unchecked; lengths parse with
//! `string2ll` (no `+`, no leading zeros, no `-0`).
//!
//! `redis-protocol` frames strictly (it checks every `\r\n` and types nested
//! frames), which answers malformed input differently from Redis, so requests
//! are read here and `redis-protocol` only decodes replies in the test clients.

use super::reply::{ErrorText, Reply};

/// Input bounds, Redis's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk argument accepted (`proto-max-bulk-len`, 512 MiB).
    pub max_bulk: usize,
    /// Most bytes one connection may have buffered (`client-query-buffer-limit`,
    /// 1 GiB); past it the connection closes without a reply.
    pub max_query_buffer: usize,
    /// Longest inline command or length line (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bulk: 512 << 20, max_query_buffer: 1 << 30, max_inline: 64 * 1024 }
    }
}

/// Most arguments a multibulk may declare (`INT_MAX`); memory is bounded by the
/// query buffer, not by this.
const MAX_MULTIBULK: i64 = i32::MAX as i64;

/// Arguments are not preallocated past this many, whatever a client declares.
const PREALLOCATE_ARGS: usize = 1024;

/// One request's arguments, never empty.
pub type Args = Vec<Vec<u8>>;

/// Why the connection must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// No `\n` within the inline limit.
    TooBigInline,
    /// A quote is not closed, or a closing quote is followed by a non-space.
    UnbalancedQuotes,
    /// No `\r` after `*` within the inline limit.
    TooBigMultibulkCount,
    /// The `*<n>` count is not a number or is past `INT_MAX`.
    InvalidMultibulkLength,
    /// No `\r` after an argument header within the inline limit.
    TooBigBulkCount,
    /// An argument header does not start with `$`; carries the byte found.
    ExpectedDollar(u8),
    /// The `$<len>` is not a number, negative or past `max_bulk`.
    InvalidBulkLength,
    /// The connection buffered more than `max_query_buffer`.
    QueryBufferFull,
}

impl ProtocolError {
    /// The error reply Redis sends before closing; `None` where it closes silently.
    pub fn reply(&self) -> Option<Reply> {
        let text = match self {
            Self::TooBigInline => "too big inline request",
            Self::UnbalancedQuotes => "unbalanced quotes in request",
            Self::TooBigMultibulkCount => "too big mbulk count string",
            Self::InvalidMultibulkLength => "invalid multibulk length",
            Self::TooBigBulkCount => "too big bulk count string",
            Self::InvalidBulkLength => "invalid bulk length",
            Self::ExpectedDollar(byte) => {
                let found = [*byte];
                return Some(ErrorText::new("ERR Protocol error: expected '$', got '").arg(&found).text("'").reply());
            }
            Self::QueryBufferFull => return None,
        };
        Some(ErrorText::new("ERR Protocol error: ").text(text).reply())
    }
}

/// A multibulk read so far.
#[derive(Debug, Default)]
struct Multibulk {
    remaining: usize,
    bulk_len: Option<usize>,
    args: Args,
}

/// One connection's query buffer and parse state.
#[derive(Debug)]
pub struct RequestReader {
    limits: Limits,
    buf: Vec<u8>,
    pos: usize,
    multibulk: Option<Multibulk>,
}

impl RequestReader {
    /// An empty reader.
    pub fn new(limits: Limits) -> Self {
        Self { limits, buf: Vec::with_capacity(4096), pos: 0, multibulk: None }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.len() - self.pos + bytes.len() > self.limits.max_query_buffer {
            return Err(ProtocolError::QueryBufferFull);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete request, `Ok(None)` when more input is needed.
    pub fn next_request(&mut self) -> Result<Option<Args>, ProtocolError> {
        while self.pos < self.buf.len() {
            let parsed = match self.multibulk.is_some() || self.buf.get(self.pos) == Some(&b'*') {
                true => self.multibulk()?,
                false => self.inline()?,
            };
            match parsed {
                Step::More => return Ok(None),
                Step::Request(args) if args.is_empty() => {}
                Step::Request(args) => return Ok(Some(args)),
            }
        }
        Ok(None)
    }

    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn inline(&mut self) -> Result<Step, ProtocolError> {
        let rest = self.rest();
        let Some(newline) = c_find(rest, b'\n') else {
            return if rest.len() > self.limits.max_inline { Err(ProtocolError::TooBigInline) } else { Ok(Step::More) };
        };
        let line = rest.get(..newline).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
        self.pos += newline + 1;
        Ok(Step::Request(args))
    }

    fn multibulk(&mut self) -> Result<Step, ProtocolError> {
        let mut state = match self.multibulk.take() {
            Some(state) => state,
            None => match self.multibulk_header()? {
                Some(state) => state,
                None => return Ok(Step::More),
            },
        };
        while state.remaining > 0 {
            let len = match state.bulk_len {
                Some(len) => len,
                None => match self.bulk_header()? {
                    Some(len) => len,
                    None => break,
                },
            };
            state.bulk_len = Some(len);
            let Some(arg) = self.rest().get(..len).filter(|_| self.rest().len() >= len + 2) else { break };
            state.args.push(arg.to_vec());
            self.pos += len + 2;
            state.bulk_len = None;
            state.remaining -= 1;
        }
        if state.remaining > 0 {
            self.multibulk = Some(state);
            return Ok(Step::More);
        }
        Ok(Step::Request(state.args))
    }

    /// `*<n>\r?`: a started multibulk, an empty request for `n <= 0` (as
    /// `Some` with nothing remaining), or `None` for more input.
    fn multibulk_header(&mut self) -> Result<Option<Multibulk>, ProtocolError> {
        let Some(count) = self.length_line(ProtocolError::TooBigMultibulkCount)? else { return Ok(None) };
        let digits = count.get(1..).unwrap_or_default();
        let count = parse_i64(digits).filter(|count| *count <= MAX_MULTIBULK);
        let count = count.ok_or(ProtocolError::InvalidMultibulkLength)?;
        self.skip_length_line();
        let remaining = usize::try_from(count).unwrap_or(0);
        Ok(Some(Multibulk { remaining, bulk_len: None, args: Vec::with_capacity(remaining.min(PREALLOCATE_ARGS)) }))
    }

    /// `$<len>\r?`: the argument's length, or `None` for more input.
    fn bulk_header(&mut self) -> Result<Option<usize>, ProtocolError> {
        let Some(line) = self.length_line(ProtocolError::TooBigBulkCount)? else { return Ok(None) };
        let (marker, digits) = line.split_first().unwrap_or((&b'\r', &[]));
        if *marker != b'$' {
            return Err(ProtocolError::ExpectedDollar(*marker));
        }
        let len =
            parse_i64(digits).and_then(|len| usize::try_from(len).ok()).filter(|len| *len <= self.limits.max_bulk);
        let len = len.ok_or(ProtocolError::InvalidBulkLength)?;
        self.skip_length_line();
        Ok(Some(len))
    }

    /// The bytes before the next `\r` (searched as `strchr` does), once a byte
    /// follows that `\r`; `too_big` when there is none within the inline limit.
    fn length_line(&self, too_big: ProtocolError) -> Result<Option<&[u8]>, ProtocolError> {
        let rest = self.rest();
        match c_find(rest, b'\r') {
            None if rest.len() > self.limits.max_inline => Err(too_big),
            Some(cr) if cr + 2 <= rest.len() => Ok(rest.get(..cr)),
            _ => Ok(None),
        }
    }

    /// Moves past a length line and the byte after its `\r`.
    fn skip_length_line(&mut self) {
        let cr = c_find(self.rest(), b'\r').unwrap_or(0);
        self.pos += cr + 2;
    }
}

enum Step {
    More,
    Request(Args),
}

/// `strchr`: the first `needle` before any NUL byte.
fn c_find(bytes: &[u8], needle: u8) -> Option<usize> {
    bytes.iter().position(|byte| *byte == needle || *byte == 0).filter(|at| bytes.get(*at) == Some(&needle))
}

/// Redis's `string2ll`: optional `-`, no `+`, no leading zeros, no `-0`, in range.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = match digits {
        [b'0'] => digits.len() == text.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    canonical.then(|| std::str::from_utf8(text).ok()?.parse().ok()).flatten()
}

/// Redis's `sdssplitargs`: words separated by spaces; `"…"` with `\xHH`, `\n`,
/// `\r`, `\t`, `\b`, `\a` escapes; `'…'` with `\'`. `None` for unbalanced quotes.
fn split_args(line: &[u8]) -> Option<Args> {
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|byte| is_c_space(*byte)) {
            at += 1;
        }
        if at >= line.len() {
            return Some(args);
        }
        let (word, next) = split_word(line, at)?;
        args.push(word);
        at = next;
    }
}

/// One word starting at `at`: the word and where scanning continues.
fn split_word(line: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut word = Vec::new();
    let mut quote = None;
    loop {
        let byte = line.get(at).copied();
        match (quote, byte) {
            (Some(_), None) => return None,
            (None, None | Some(b' ' | b'\n' | b'\r' | b'\t')) => return Some((word, at + 1)),
            (None, Some(open @ (b'"' | b'\''))) => quote = Some(open),
            (None, Some(other)) => word.push(other),
            (Some(close), Some(found)) if found == close => {
                let after = line.get(at + 1);
                return after.is_none_or(|byte| is_c_space(*byte)).then_some((word, at + 2));
            }
            (Some(b'"'), Some(b'\\')) => at += unescape_double(line, at, &mut word),
            (Some(_), Some(b'\\')) if line.get(at + 1) == Some(&b'\'') => {
                word.push(b'\'');
                at += 1;
            }
            (Some(_), Some(other)) => word.push(other),
        }
        at += 1;
    }
}

/// A backslash escape inside double quotes at `at`; pushes the byte it stands
/// for and returns how many bytes past the backslash it used.
fn unescape_double(line: &[u8], at: usize, word: &mut Vec<u8>) -> usize {
    let hex = |offset: usize| line.get(at + offset).and_then(|digit| char::from(*digit).to_digit(16));
    if line.get(at + 1) == Some(&b'x') {
        if let (Some(high), Some(low)) = (hex(2), hex(3)) {
            word.push(u8::try_from(high * 16 + low).unwrap_or(0));
            return 3;
        }
    }
    match line.get(at + 1) {
        None => {
            word.push(b'\\');
            0
        }
        Some(escaped) => {
            word.push(match escaped {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 0x08,
                b'a' => 0x07,
                other => *other,
            });
            1
        }
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Vec<Args>, Option<ProtocolError>) {
        let mut reader = RequestReader::new(Limits::default());
        reader.feed(input).expect("within limits");
        let mut requests = Vec::new();
        loop {
            match reader.next_request() {
                Ok(Some(args)) => requests.push(args),
                Ok(None) => return (requests, None),
                Err(error) => return (requests, Some(error)),
            }
        }
    }

    fn words(words: &[&str]) -> Args {
        words.iter().map(|word| word.as_bytes().to_vec()).collect()
    }

    #[test]
    fn reads_multibulk_with_redis_quirks() {
        assert_eq!(read_all(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"), (vec![words(&["ECHO", "hi"])], None));
        assert_eq!(read_all(b"*1\r\n$4\r\nPINGXY*-5\r\n*1\rX$4\r\nPING\r\n").0, vec![words(&["PING"]); 2]);
        assert_eq!(read_all(b"*1\r\n:5\r\n"), (vec![], Some(ProtocolError::ExpectedDollar(b':'))));
        assert_eq!(read_all(b"*01\r\n").1, Some(ProtocolError::InvalidMultibulkLength));
        assert_eq!(read_all(b"*2147483648\r\n").1, Some(ProtocolError::InvalidMultibulkLength));
        assert_eq!(read_all(b"*2147483647\r\n"), (vec![], None));
        assert_eq!(read_all(b"*1\r\n$-0\r\n").1, Some(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn reads_inline_like_sdssplitargs() {
        assert_eq!(
            read_all(b"PING 'a\\'b' \"x\\x41\\n\"\r\n").0,
            vec![vec![b"PING".to_vec(), b"a'b".to_vec(), b"xA\n".to_vec()]]
        );
        assert_eq!(
            read_all(b"PING\rPING\r\n\r\n\x0bX\x0c y\n").0,
            vec![words(&["PING", "PING"]), words(&["X\x0c", "y"])]
        );
        assert_eq!(read_all(b"PING 'a'b\r\n").1, Some(ProtocolError::UnbalancedQuotes));
        assert_eq!(read_all(b"PING \"a\\\r\n").1, Some(ProtocolError::UnbalancedQuotes));
        assert_eq!(read_all(b"PI\0NG\r\nPING\r\n"), (vec![], None), "a NUL hides the newline, as strchr does");
    }

    #[test]
    fn bounds_hold() {
        let long = vec![b'a'; 64 * 1024 + 1];
        assert_eq!(read_all(&long).1, Some(ProtocolError::TooBigInline));
        let mut reader = RequestReader::new(Limits { max_query_buffer: 8, ..Limits::default() });
        assert_eq!(reader.feed(b"123456789"), Err(ProtocolError::QueryBufferFull));
    }
}
