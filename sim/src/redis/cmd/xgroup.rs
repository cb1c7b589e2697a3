//! `XGROUP CREATE | SETID | DESTROY | CREATECONSUMER | DELCONSUMER | HELP`

use super::{Ctx, Exec, Spec, help, is, no_such_group, parse_i64, sub, sub_denyoom, subcommand_syntax_error};
use crate::redis::id::{INVALID_ID, StreamId, parse_id};
use crate::redis::reply::{Reply, count, err, ok};
use crate::redis::stream::{Group, Stream};

pub(super) static SUBCOMMANDS: &[Spec] = &[
    sub_denyoom("create", -5, create),
    sub("destroy", 4, destroy),
    sub_denyoom("createconsumer", 5, create_consumer),
    sub("delconsumer", 5, del_consumer),
    sub("setid", -5, set_id),
    sub("help", 2, help_text),
];

const KEY_REQUIRED: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want \
                            to use the MKSTREAM option to create an empty stream automatically.";

/// CREATE's and SETID's trailing options.
#[derive(Debug, Default)]
struct Options {
    mkstream: bool,
    /// ENTRIESREAD; `None` when absent or -1 (unknown).
    entries_read: Option<u64>,
}

/// Parses CREATE/SETID's trailing options as Redis does, before anything else.
fn options(args: &[Vec<u8>], create: bool) -> Result<Options, Reply> {
    let mut parsed = Options::default();
    let mut i = 5;
    while i < args.len() {
        if create && is(&args[i], "MKSTREAM") {
            parsed.mkstream = true;
        } else if is(&args[i], "ENTRIESREAD") && i + 1 < args.len() {
            i += 1;
            let value = parse_i64(&args[i])?;
            if value < -1 {
                return Err(err("ERR value for ENTRIESREAD must be positive or -1"));
            }
            parsed.entries_read = u64::try_from(value).ok();
        } else {
            return Err(subcommand_syntax_error(args));
        }
        i += 1;
    }
    Ok(parsed)
}

/// The stream for a subcommand that needs the key, with Redis's errors.
fn existing<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<&'a mut Stream, Reply> {
    ctx.keyspace.stream(key, ctx.now_ms)?.ok_or_else(|| err(KEY_REQUIRED))
}

/// The group, or `NOGROUP … for key name …`.
fn group_of<'a>(stream: &'a mut Stream, key: &[u8], group: &[u8]) -> Result<&'a mut Group, Reply> {
    stream.groups.get_mut(group).ok_or_else(|| no_such_group(key, group))
}

/// `$` (the stream's last id) or a strict id (`-` and `+` refused).
fn start_id(text: &[u8], last: StreamId) -> Result<StreamId, Reply> {
    match text {
        b"$" => Ok(last),
        b"-" | b"+" => Err(err(INVALID_ID)),
        _ => parse_id(text, 0),
    }
}

fn create(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    result(create_inner(ctx, args))
}

fn create_inner(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let options = options(args, true)?;
    let now = ctx.now_ms;
    let found = ctx.keyspace.stream(&args[2], now)?;
    let last = found.as_ref().map_or(StreamId::MIN, |stream| stream.last_id);
    if found.is_none() && !options.mkstream {
        return Err(err(KEY_REQUIRED));
    }
    if args.len() > 8 {
        return Err(subcommand_syntax_error(args));
    }
    let id = start_id(&args[4], last)?;
    let stream = ctx.keyspace.stream_or_create(&args[2], now)?;
    if stream.groups.contains_key(&args[3]) {
        return Err(err("BUSYGROUP Consumer Group name already exists"));
    }
    stream.groups.insert(args[3].clone(), Group::new(id, options.entries_read));
    ctx.keyspace.touch();
    Ok(ok())
}

fn destroy(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let removed = existing(ctx, &args[2]).map(|stream| stream.groups.remove(&args[3]).is_some());
    if removed == Ok(true) {
        ctx.keyspace.touch();
        ctx.keyspace.signal(&args[2]);
    }
    result(removed.map(|removed| Reply::Int(i64::from(removed))))
}

fn create_consumer(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let now = ctx.now_ms;
    let created = existing(ctx, &args[2])
        .and_then(|stream| group_of(stream, &args[2], &args[3]))
        .map(|group| group.touch(&args[4], now));
    ctx.keyspace.touch();
    result(created.map(|created| Reply::Int(i64::from(created))))
}

fn del_consumer(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let pending = existing(ctx, &args[2]).and_then(|stream| group_of(stream, &args[2], &args[3])).map(|group| {
        let before = group.pel.len();
        group.pel.retain(|_, pending| pending.consumer != args[4]);
        group.consumers.remove(&args[4]);
        before - group.pel.len()
    });
    ctx.keyspace.touch();
    result(pending.map(count))
}

fn set_id(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let outcome = options(args, false).and_then(|options| {
        let stream = existing(ctx, &args[2])?;
        let last = stream.last_id;
        let group = group_of(stream, &args[2], &args[3])?;
        if args.len() != 5 && args.len() != 7 {
            return Err(subcommand_syntax_error(args));
        }
        let id = start_id(&args[4], last)?;
        group.last_delivered = id;
        group.entries_read = options.entries_read;
        Ok(ok())
    });
    ctx.keyspace.touch();
    result(outcome)
}

fn help_text(_ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    help(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    )
}

fn result(outcome: Result<Reply, Reply>) -> Exec {
    outcome.unwrap_or_else(|reply| reply).into()
}
