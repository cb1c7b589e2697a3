//! The command table: one file per command, each a `run(ctx, args) -> Exec`.
//!
//! `args[0]` is the command name as the client sent it. Arity is checked here with
//! Redis's convention (positive: exact count including the name; negative: at
//! least that many), so handlers may index the mandatory arguments freely.

mod auth;
mod claim_common;
mod client;
mod del;
mod exists;
mod expire;
mod flushall;
mod get;
mod hello;
mod info;
mod ping;
mod read_common;
mod select;
mod set;
mod ttl;
mod type_;
mod xack;
mod xadd;
mod xautoclaim;
mod xclaim;
mod xdel;
mod xgroup;
mod xinfo;
mod xlen;
mod xpending;
mod xrange;
mod xread;
mod xreadgroup;
mod xrevrange;
mod xtrim;

use super::id::StreamId;
use super::keyspace::Keyspace;
use super::reply::{ErrorText, Reply, err};

/// Per-connection state commands may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Protocol version, 2 or 3.
    pub resp: u8,
    /// Client name set by `CLIENT SETNAME` / `HELLO SETNAME`.
    pub name: Vec<u8>,
    /// Connection id.
    pub id: u64,
}

/// What a command sees.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The database.
    pub keyspace: &'a mut Keyspace,
    /// Server time in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The connection.
    pub session: &'a mut Session,
}

/// A command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exec {
    /// Answer now.
    Reply(Reply),
    /// Nothing to read yet: wait for a write or `timeout_ms` (0 = forever), then
    /// run `retry` (the same command with `$` resolved) again.
    Block { timeout_ms: u64, retry: Vec<Vec<u8>> },
    /// Drop the connection without answering, discarding replies not yet sent:
    /// Redis's answer to `POST` and `Host:` (an HTTP request aimed at Redis).
    Close,
}

impl From<Reply> for Exec {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

type Handler = fn(&mut Ctx<'_>, &[Vec<u8>]) -> Exec;

/// A table row: lower-case name, Redis arity, handler.
pub(super) struct Spec {
    name: &'static str,
    arity: i32,
    handler: Handler,
}

const fn spec(name: &'static str, arity: i32, handler: Handler) -> Spec {
    Spec { name, arity, handler }
}

static COMMANDS: &[Spec] = &[
    spec("ping", -1, ping::run),
    spec("hello", -1, hello::run),
    spec("client", -2, client::run),
    spec("select", 2, select::run),
    spec("auth", -2, auth::run),
    spec("info", -1, info::run),
    spec("xadd", -5, xadd::run),
    spec("xlen", 2, xlen::run),
    spec("xrange", -4, xrange::run),
    spec("xrevrange", -4, xrevrange::run),
    spec("xtrim", -4, xtrim::run),
    spec("xdel", -3, xdel::run),
    spec("xgroup", -2, xgroup::run),
    spec("xreadgroup", -7, xreadgroup::run),
    spec("xread", -4, xread::run),
    spec("xack", -4, xack::run),
    spec("xpending", -3, xpending::run),
    spec("xclaim", -6, xclaim::run),
    spec("xautoclaim", -6, xautoclaim::run),
    spec("xinfo", -2, xinfo::run),
    spec("del", -2, del::run),
    spec("exists", -2, exists::run),
    spec("type", 2, type_::run),
    spec("get", 2, get::run),
    spec("set", -3, set::run),
    spec("expire", -3, expire::run),
    spec("ttl", 2, ttl::run),
    spec("flushall", -1, flushall::run),
];

/// Runs one command.
pub fn dispatch(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let Some(name) = args.first() else {
        return err("ERR empty command").into();
    };
    let lower = name.to_ascii_lowercase();
    if lower == b"post" || lower == b"host:" {
        tracing::warn!("possible security attack: an HTTP request reached the simulated Redis; connection dropped");
        return Exec::Close;
    }
    match COMMANDS.iter().find(|spec| spec.name.as_bytes() == lower) {
        Some(spec) if !arity_ok(spec.arity, args.len()) => wrong_arity(spec.name).into(),
        Some(spec) => (spec.handler)(ctx, args),
        None => unknown_command(args).into(),
    }
}

/// Dispatches a container's subcommand (`XGROUP CREATE`…) from its own table.
pub(super) fn dispatch_sub(ctx: &mut Ctx<'_>, args: &[Vec<u8>], container: &str, table: &[Spec]) -> Exec {
    let sub = args.get(1).map(|sub| sub.to_ascii_lowercase()).unwrap_or_default();
    match table.iter().find(|spec| spec.name.as_bytes() == sub) {
        Some(spec) if !arity_ok(spec.arity, args.len()) => wrong_arity(&format!("{container}|{}", spec.name)).into(),
        Some(spec) => (spec.handler)(ctx, args),
        None => ErrorText::new("ERR unknown subcommand '")
            .arg_max(args.get(1).map_or(&[][..], Vec::as_slice), 128)
            .text(&format!("'. Try {} HELP.", container.to_ascii_uppercase()))
            .reply()
            .into(),
    }
}

pub(super) const fn sub(name: &'static str, arity: i32, handler: Handler) -> Spec {
    spec(name, arity, handler)
}

fn arity_ok(arity: i32, given: usize) -> bool {
    let given = i64::try_from(given).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity >= 0 { given == arity } else { given >= -arity }
}

fn wrong_arity(full_name: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{full_name}' command").into_bytes())
}

/// Redis quotes the arguments while fewer than 128 bytes of quotes are built,
/// each cut to the room left.
fn unknown_command(args: &[Vec<u8>]) -> Reply {
    let name = args.first().map_or(&[][..], Vec::as_slice);
    let mut quoted = ErrorText::default();
    for arg in args.iter().skip(1) {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        quoted = quoted.text("'").arg_max(arg, room).text("' ");
    }
    let mut text = ErrorText::new("ERR unknown command '").arg_max(name, 128).text("', with args beginning with: ");
    if let Reply::Error(bytes) = quoted.reply() {
        text = text.arg(&bytes);
    }
    text.reply()
}

/// `ERR syntax error`
pub(super) fn syntax_error() -> Reply {
    err("ERR syntax error")
}

/// `ERR value is not an integer or out of range`
pub(super) fn not_integer() -> Reply {
    err("ERR value is not an integer or out of range")
}

/// Parses a signed integer with Redis's strict `string2ll` rules.
pub(super) fn parse_i64(text: &[u8]) -> Result<i64, Reply> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let valid = match digits {
        [b'0'] => !negative,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let parsed = valid.then(|| std::str::from_utf8(text).ok()?.parse::<i64>().ok()).flatten();
    parsed.ok_or_else(not_integer)
}

/// Whether `arg` equals `word`, ignoring ASCII case.
pub(super) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The `NOGROUP` error XPENDING, XCLAIM and XAUTOCLAIM give.
pub(super) fn no_group(key: &[u8], group: &[u8]) -> Reply {
    ErrorText::new("NOGROUP No such key '").arg(key).text("' or consumer group '").arg(group).text("'").reply()
}

/// `[id, [field, value, …]]`, or `[id, nil]` for an entry that is gone.
pub(super) fn entry_reply(id: StreamId, fields: Option<&Vec<Vec<u8>>>) -> Reply {
    let body = match fields {
        Some(fields) => Reply::Array(fields.iter().map(|field| Reply::Bulk(field.clone())).collect()),
        None => Reply::NilArray,
    };
    Reply::Array(vec![id.reply(), body])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b"-12"), Ok(-12));
        assert_eq!(parse_i64(b"0"), Ok(0));
        for bad in [&b"01"[..], b"-0", b"+1", b"", b"1x", b"99999999999999999999"] {
            assert!(parse_i64(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_command_quotes_args_like_redis() {
        let reply = unknown_command(&[b"foo".to_vec(), b"bar".to_vec(), b"baz".to_vec()]);
        assert_eq!(reply, err("ERR unknown command 'foo', with args beginning with: 'bar' 'baz' "));
    }
}
