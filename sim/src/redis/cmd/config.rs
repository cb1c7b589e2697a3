//! `CONFIG GET pattern … | SET name value … | RESETSTAT | HELP`: the stream
//! knobs are settable; the connection limits and a few settings clients read
//! are reported; other names match nothing, as unknown names do in Redis.

use super::keys::glob_match;
use super::{Ctx, Exec, Spec, help, sub_loading, syntax_error};
use crate::redis::reply::{ErrorText, Reply, bulk, ok};
use crate::redis::state::{ServerState, Stats};

pub(super) static SUBCOMMANDS: &[Spec] = &[
    sub_loading("get", -3, get),
    sub_loading("set", -4, set),
    sub_loading("resetstat", 2, resetstat),
    sub_loading("help", 2, help_text),
];

/// Parameter names in the order `CONFIG GET` lists them.
const NAMES: &[&str] = &[
    "stream-node-max-entries",
    "stream-node-max-bytes",
    "maxclients",
    "timeout",
    "client-query-buffer-limit",
    "proto-max-bulk-len",
    "requirepass",
    "databases",
    "appendonly",
    "appendfsync",
    "maxmemory",
    "save",
];

fn value(server: &ServerState, name: &str) -> String {
    match name {
        "stream-node-max-entries" => server.node_limits.max_entries.to_string(),
        "stream-node-max-bytes" => server.node_limits.max_bytes.to_string(),
        "maxclients" => server.limits.max_clients.to_string(),
        "timeout" => server.limits.idle_timeout_s.to_string(),
        "client-query-buffer-limit" => server.limits.query_buffer_bytes.to_string(),
        "proto-max-bulk-len" => (512_u64 << 20).to_string(),
        "requirepass" => String::from_utf8_lossy(server.requirepass.as_deref().unwrap_or_default()).into_owned(),
        "databases" => crate::redis::keyspace::DATABASES.to_string(),
        "appendonly" => "yes".to_owned(),
        "appendfsync" => "everysec".to_owned(),
        "maxmemory" => "0".to_owned(),
        _ => String::new(),
    }
}

fn get(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let pairs = NAMES
        .iter()
        .filter(|name| args[2..].iter().any(|pattern| glob_match(&pattern.to_ascii_lowercase(), name.as_bytes())))
        .map(|name| (bulk(name), bulk(&value(ctx.server, name))))
        .collect();
    Reply::Map(pairs).into()
}

/// A settable parameter and its new value.
enum Change {
    NodeEntries(u64),
    NodeBytes(u64),
}

fn set(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    if args.len() % 2 != 0 {
        return syntax_error().into();
    }
    let mut changes = Vec::new();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for pair in args[2..].chunks(2) {
        let (name, text) = (pair[0].to_ascii_lowercase(), &pair[1]);
        let failed = |why: &str| {
            ErrorText::new("ERR CONFIG SET failed (possibly related to argument '")
                .arg(&pair[0])
                .text("') - ")
                .text(why)
        };
        if seen.contains(&name) {
            return failed("duplicate parameter").reply().into();
        }
        let change = match name.as_slice() {
            b"stream-node-max-entries" => parse_integer(text).map(Change::NodeEntries),
            b"stream-node-max-bytes" => parse_memory(text).map(Change::NodeBytes),
            _ => {
                return ErrorText::new("ERR Unknown option or number of arguments for CONFIG SET - '")
                    .arg(&pair[0])
                    .text("'")
                    .reply()
                    .into();
            }
        };
        match change {
            Ok(change) => changes.push(change),
            Err(why) => return failed(why).reply().into(),
        }
        seen.push(name);
    }
    for change in changes {
        match change {
            Change::NodeEntries(value) => ctx.server.node_limits.max_entries = value,
            Change::NodeBytes(value) => ctx.server.node_limits.max_bytes = value,
        }
    }
    ok().into()
}

fn parse_integer(text: &[u8]) -> Result<u64, &'static str> {
    let value = super::parse_i64(text).map_err(|_| "argument couldn't be parsed into an integer")?;
    u64::try_from(value).map_err(|_| "argument must be between 0 and 9223372036854775807 inclusive")
}

/// Redis's `memtoull`: digits with an optional b / k / kb / m / mb / g / gb unit.
fn parse_memory(text: &[u8]) -> Result<u64, &'static str> {
    const INVALID: &str = "argument must be a memory value";
    let split = text.iter().position(|byte| !byte.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: u64 = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return Err(INVALID),
    };
    let number: u64 = std::str::from_utf8(digits).ok().and_then(|digits| digits.parse().ok()).ok_or(INVALID)?;
    let bytes = number.checked_mul(scale).ok_or(INVALID)?;
    if bytes > i64::MAX as u64 {
        return Err("argument must be between 0 and 9223372036854775807 inclusive");
    }
    Ok(bytes)
}

fn resetstat(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    ctx.server.stats = Stats::default();
    ok().into()
}

fn help_text(_ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    help(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    )
}
