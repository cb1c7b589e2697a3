//! The command table: one file per command, each a `run(ctx, args) -> Exec`.
//!
//! `args[0]` is the command name as the client sent it. Arity is checked here with
//! Redis's convention (positive: exact count including the name; negative: at
//! least that many), so handlers may index the mandatory arguments freely.

mod auth;
mod claim_common;
mod client;
mod config;
mod dbsize;
mod del;
mod echo;
mod exists;
mod expire;
mod flushall;
mod get;
mod hello;
mod info;
mod keys;
mod list;
mod multi;
mod persist;
mod ping;
mod quit;
mod read_common;
mod rename;
mod reset;
mod scan;
mod select;
mod set;
mod strings;
mod swapdb;
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
mod xsetid;
mod xtrim;

pub use read_common::{BlockedRead, serve_blocked};

use super::id::StreamId;
use super::keyspace::Keyspace;
use super::reply::{ErrorText, Reply, err};
use super::state::ServerState;

/// Per-connection state commands may change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    /// Protocol version, 2 or 3.
    pub resp: u8,
    /// Client name set by `CLIENT SETNAME` / `HELLO SETNAME`.
    pub name: Vec<u8>,
    /// Connection id.
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// Whether `AUTH` succeeded (or no password is required).
    pub authenticated: bool,
    /// The open transaction, between `MULTI` and `EXEC`/`DISCARD`.
    pub multi: Option<Multi>,
    /// The last command's full name, for `CLIENT LIST`.
    pub last_command: String,
}

impl Session {
    /// A new connection's state: RESP2, database 0, authenticated when no
    /// password is required.
    pub fn new(id: u64, authenticated: bool) -> Self {
        Self { resp: 2, id, authenticated, last_command: "NULL".to_owned(), ..Self::default() }
    }
}

/// A transaction being queued.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Multi {
    /// Commands to run at `EXEC`.
    pub queue: Vec<Vec<Vec<u8>>>,
    /// A command was refused while queueing: `EXEC` answers `EXECABORT`.
    pub aborted: bool,
}

/// What a command sees.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The databases; the session's is selected.
    pub keyspace: &'a mut Keyspace,
    /// Server-wide settings, statistics and clients.
    pub server: &'a mut ServerState,
    /// Server time in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// The connection.
    pub session: &'a mut Session,
    /// Inside `EXEC`: blocking commands answer at once instead of blocking.
    pub deny_blocking: bool,
}

/// A command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exec {
    /// Answer now.
    Reply(Reply),
    /// Nothing to read yet: wait until a write serves it or it times out.
    Block(BlockedRead),
    /// Answer, then close the connection (`QUIT`).
    ReplyThenClose(Reply),
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

/// Allowed before `AUTH` (Redis's `no_auth`).
const NO_AUTH: u8 = 1;
/// Refused past `maxmemory` (Redis's `denyoom`).
const DENY_OOM: u8 = 2;
/// Allowed while the dataset loads (Redis's `loading`).
const LOADING: u8 = 4;
/// Runs at once inside `MULTI` instead of being queued.
const NOT_QUEUED: u8 = 8;

/// What a table row runs: a handler, or a container's subcommand table.
enum Body {
    Run(Handler),
    Container(&'static [Spec]),
}

/// A table row: lower-case name, Redis arity, flags, what it runs.
pub(super) struct Spec {
    name: &'static str,
    arity: i32,
    flags: u8,
    body: Body,
}

const fn cmd(name: &'static str, arity: i32, flags: u8, handler: Handler) -> Spec {
    Spec { name, arity, flags, body: Body::Run(handler) }
}

const fn container(name: &'static str, subcommands: &'static [Spec]) -> Spec {
    Spec { name, arity: -2, flags: LOADING, body: Body::Container(subcommands) }
}

/// A subcommand row of a container's table.
pub(super) const fn sub(name: &'static str, arity: i32, handler: Handler) -> Spec {
    cmd(name, arity, 0, handler)
}

/// A subcommand allowed while the dataset loads (`CLIENT`, `CONFIG`).
pub(super) const fn sub_loading(name: &'static str, arity: i32, handler: Handler) -> Spec {
    cmd(name, arity, LOADING, handler)
}

/// A subcommand that may grow memory.
pub(super) const fn sub_denyoom(name: &'static str, arity: i32, handler: Handler) -> Spec {
    cmd(name, arity, DENY_OOM, handler)
}

static COMMANDS: &[Spec] = &[
    cmd("ping", -1, 0, ping::run),
    cmd("echo", 2, LOADING, echo::run),
    cmd("hello", -1, NO_AUTH | LOADING, hello::run),
    cmd("auth", -2, NO_AUTH | LOADING, auth::run),
    cmd("quit", -1, NO_AUTH | LOADING | NOT_QUEUED, quit::run),
    cmd("reset", 1, NO_AUTH | LOADING | NOT_QUEUED, reset::run),
    cmd("select", 2, LOADING, select::run),
    cmd("info", -1, LOADING, info::run),
    container("client", client::SUBCOMMANDS),
    container("config", config::SUBCOMMANDS),
    cmd("dbsize", 1, 0, dbsize::run),
    cmd("flushdb", -1, 0, flushall::flushdb),
    cmd("flushall", -1, 0, flushall::run),
    cmd("swapdb", 3, 0, swapdb::run),
    cmd("multi", 1, LOADING | NOT_QUEUED, multi::multi),
    cmd("exec", 1, LOADING | NOT_QUEUED, multi::exec),
    cmd("discard", 1, LOADING | NOT_QUEUED, multi::discard),
    cmd("watch", -2, LOADING | NOT_QUEUED, multi::watch),
    cmd("unwatch", 1, LOADING, multi::unwatch),
    cmd("del", -2, 0, del::run),
    cmd("unlink", -2, 0, del::run),
    cmd("exists", -2, 0, exists::run),
    cmd("type", 2, 0, type_::run),
    cmd("rename", 3, 0, rename::rename),
    cmd("renamenx", 3, 0, rename::renamenx),
    cmd("expire", -3, 0, expire::expire),
    cmd("pexpire", -3, 0, expire::pexpire),
    cmd("expireat", -3, 0, expire::expireat),
    cmd("pexpireat", -3, 0, expire::pexpireat),
    cmd("ttl", 2, 0, ttl::ttl),
    cmd("pttl", 2, 0, ttl::pttl),
    cmd("expiretime", 2, 0, ttl::expiretime),
    cmd("pexpiretime", 2, 0, ttl::pexpiretime),
    cmd("persist", 2, 0, persist::run),
    cmd("keys", 2, 0, keys::run),
    cmd("scan", -2, 0, scan::run),
    cmd("get", 2, 0, get::run),
    cmd("set", -3, DENY_OOM, set::run),
    cmd("incr", 2, DENY_OOM, strings::incr),
    cmd("decr", 2, DENY_OOM, strings::decr),
    cmd("incrby", 3, DENY_OOM, strings::incrby),
    cmd("decrby", 3, DENY_OOM, strings::decrby),
    cmd("append", 3, DENY_OOM, strings::append),
    cmd("lpush", -3, DENY_OOM, list::lpush),
    cmd("rpush", -3, DENY_OOM, list::rpush),
    cmd("lrange", 4, 0, list::lrange),
    cmd("llen", 2, 0, list::llen),
    cmd("xadd", -5, DENY_OOM, xadd::run),
    cmd("xlen", 2, 0, xlen::run),
    cmd("xrange", -4, 0, xrange::run),
    cmd("xrevrange", -4, 0, xrevrange::run),
    cmd("xtrim", -4, 0, xtrim::run),
    cmd("xdel", -3, 0, xdel::run),
    cmd("xsetid", -3, DENY_OOM, xsetid::run),
    container("xgroup", xgroup::SUBCOMMANDS),
    cmd("xreadgroup", -7, 0, xreadgroup::run),
    cmd("xread", -4, 0, xread::run),
    cmd("xack", -4, 0, xack::run),
    cmd("xpending", -3, 0, xpending::run),
    cmd("xclaim", -6, 0, xclaim::run),
    cmd("xautoclaim", -6, 0, xautoclaim::run),
    container("xinfo", xinfo::SUBCOMMANDS),
];

/// A condition under which Redis refuses commands (injected by a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `maxmemory` reached: commands that may grow memory are refused.
    Oom,
    /// The dataset is still loading: all but a few commands are refused.
    Loading,
}

/// Runs one command as Redis's `processCommand` does: existence, arity, AUTH,
/// injected refusals, then queueing inside `MULTI` or running.
pub fn dispatch(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let Some(name) = args.first() else {
        return err("ERR empty command").into();
    };
    let lower = name.to_ascii_lowercase();
    if lower == b"post" || lower == b"host:" {
        tracing::warn!("possible security attack: an HTTP request reached the simulated Redis; connection dropped");
        return Exec::Close;
    }
    let spec = match lookup(args) {
        Ok(spec) => spec,
        Err(reply) => {
            ctx.session.last_command = "NULL".to_owned();
            return refuse(ctx, reply);
        }
    };
    ctx.session.last_command = full_name(spec, args);
    if !arity_ok(spec.arity, args.len()) {
        return refuse(ctx, wrong_arity(&ctx.session.last_command));
    }
    if !ctx.session.authenticated && spec.flags & NO_AUTH == 0 {
        return refuse(ctx, err("NOAUTH Authentication required."));
    }
    if let Some(reply) = ctx.server.refusal.and_then(|refusal| refused(refusal, spec.flags)) {
        return refuse(ctx, reply);
    }
    if let Some(multi) = ctx.session.multi.as_mut()
        && spec.flags & NOT_QUEUED == 0
    {
        multi.queue.push(args.to_vec());
        return Reply::Simple("QUEUED".to_owned()).into();
    }
    run(ctx, spec, args)
}

/// Runs a command already checked (by [`dispatch`], or when it was queued).
fn run(ctx: &mut Ctx<'_>, spec: &Spec, args: &[Vec<u8>]) -> Exec {
    ctx.server.stats.commands_processed += 1;
    match spec.body {
        Body::Run(handler) => handler(ctx, args),
        Body::Container(_) => err("ERR internal: container without subcommand").into(),
    }
}

/// Runs a command queued by `MULTI`: it passed every check when queued.
fn run_queued(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match lookup(args) {
        Ok(spec) => run(ctx, spec, args),
        Err(reply) => reply.into(),
    }
}

/// The row for `args`: the command, or for a container its subcommand.
fn lookup(args: &[Vec<u8>]) -> Result<&'static Spec, Reply> {
    let name = args.first().map(|name| name.to_ascii_lowercase()).unwrap_or_default();
    let Some(spec) = COMMANDS.iter().find(|spec| spec.name.as_bytes() == name) else {
        return Err(unknown_command(args));
    };
    let Body::Container(subcommands) = spec.body else { return Ok(spec) };
    let Some(sub) = args.get(1) else { return Ok(spec) };
    let lower = sub.to_ascii_lowercase();
    subcommands.iter().find(|spec| spec.name.as_bytes() == lower).ok_or_else(|| {
        ErrorText::new("ERR unknown subcommand '")
            .arg_max(sub, 128)
            .text(&format!("'. Try {} HELP.", spec.name.to_ascii_uppercase()))
            .reply()
    })
}

/// `xgroup|create` for a subcommand, the name for a command.
fn full_name(spec: &Spec, args: &[Vec<u8>]) -> String {
    let base = String::from_utf8_lossy(args.first().map_or(&[][..], Vec::as_slice)).to_ascii_lowercase();
    if COMMANDS.iter().any(|row| row.name == base) && base != spec.name {
        format!("{base}|{}", spec.name)
    } else {
        spec.name.to_owned()
    }
}

/// An error before the command runs; inside `MULTI` it dooms the transaction.
/// A refused `EXEC` also discards it, and says so as Redis's `execCommandAbort` does.
fn refuse(ctx: &mut Ctx<'_>, reply: Reply) -> Exec {
    if ctx.session.last_command == "exec"
        && let Reply::Error(text) = &reply
    {
        ctx.session.multi = None;
        ctx.keyspace.unwatch_all(ctx.session.id);
        return ErrorText::new("EXECABORT Transaction discarded because of: ").arg(text).reply().into();
    }
    if let Some(multi) = ctx.session.multi.as_mut() {
        multi.aborted = true;
    }
    reply.into()
}

fn refused(refusal: Refusal, flags: u8) -> Option<Reply> {
    match refusal {
        Refusal::Oom if flags & DENY_OOM != 0 => Some(err("OOM command not allowed when used memory > 'maxmemory'.")),
        Refusal::Loading if flags & LOADING == 0 => Some(err("LOADING Redis is loading the dataset in memory")),
        Refusal::Oom | Refusal::Loading => None,
    }
}

fn arity_ok(arity: i32, given: usize) -> bool {
    let given = i64::try_from(given).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity >= 0 { given == arity } else { given >= -arity }
}

fn wrong_arity(full_name: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{full_name}' command").into_bytes())
}

/// `+OK` lines of a `HELP` reply, as Redis's `addReplyHelp` sends them: a
/// header naming the command, the lines, and the closing `HELP` entry.
pub(super) fn help(command: &str, lines: &[&str]) -> Exec {
    let mut reply = vec![Reply::Simple(format!("{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"))];
    reply.extend(lines.iter().map(|line| Reply::Simple((*line).to_owned())));
    reply.push(Reply::Simple("HELP".to_owned()));
    reply.push(Reply::Simple("    Prints this help.".to_owned()));
    Reply::Array(reply).into()
}

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try X HELP.`
pub(super) fn subcommand_syntax_error(args: &[Vec<u8>]) -> Reply {
    let container = String::from_utf8_lossy(args.first().map_or(&[][..], Vec::as_slice)).to_ascii_uppercase();
    ErrorText::new("ERR unknown subcommand or wrong number of arguments for '")
        .arg(args.get(1).map_or(&[][..], Vec::as_slice))
        .text(&format!("'. Try {container} HELP."))
        .reply()
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

/// `NOGROUP No such consumer group '<group>' for key name '<key>'` (XGROUP, XINFO).
pub(super) fn no_such_group(key: &[u8], group: &[u8]) -> Reply {
    ErrorText::new("NOGROUP No such consumer group '").arg(group).text("' for key name '").arg(key).text("'").reply()
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
