//! `XGROUP CREATE | DESTROY | CREATECONSUMER | DELCONSUMER | SETID`

use super::{Ctx, Exec, Spec, dispatch_sub, is, parse_i64, sub};
use crate::redis::id::{StreamId, parse_id};
use crate::redis::reply::{ErrorText, Reply, count, err, ok};
use crate::redis::stream::{Group, Stream};

static SUBCOMMANDS: &[Spec] = &[
    sub("create", -5, create),
    sub("destroy", 4, destroy),
    sub("createconsumer", 5, create_consumer),
    sub("delconsumer", 5, del_consumer),
    sub("setid", -5, set_id),
];

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    dispatch_sub(ctx, args, "xgroup", SUBCOMMANDS)
}

const KEY_REQUIRED: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want \
                            to use the MKSTREAM option to create an empty stream automatically.";

/// Parses CREATE/SETID's trailing options; returns whether MKSTREAM was given.
fn options(args: &[Vec<u8>], create: bool) -> Result<bool, Reply> {
    let mut mkstream = false;
    let mut i = 5;
    while i < args.len() {
        if create && is(&args[i], "MKSTREAM") {
            mkstream = true;
            i += 1;
        } else if is(&args[i], "ENTRIESREAD") && i + 1 < args.len() {
            parse_i64(&args[i + 1])?;
            i += 2;
        } else {
            return Err(ErrorText::new("ERR unknown subcommand or wrong number of arguments for '")
                .arg(&args[1])
                .text("'. Try XGROUP HELP.")
                .reply());
        }
    }
    Ok(mkstream)
}

/// The stream for a subcommand that needs the key, with Redis's errors.
fn existing<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<&'a mut Stream, Reply> {
    ctx.keyspace.stream(key, ctx.now_ms)?.ok_or_else(|| err(KEY_REQUIRED))
}

/// The group, or `NOGROUP … for key name …`.
fn group_of<'a>(stream: &'a mut Stream, key: &[u8], group: &[u8]) -> Result<&'a mut Group, Reply> {
    stream.groups.get_mut(group).ok_or_else(|| {
        ErrorText::new("NOGROUP No such consumer group '")
            .arg(group)
            .text("' for key name '")
            .arg(key)
            .text("'")
            .reply()
    })
}

fn start_id(text: &[u8], stream: Option<&Stream>) -> Result<StreamId, Reply> {
    if text == b"$" { Ok(stream.map_or(StreamId::MIN, |s| s.last_id)) } else { parse_id(text, 0) }
}

fn create(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    result(create_inner(ctx, args))
}

fn create_inner(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let mkstream = options(args, true)?;
    let now = ctx.now_ms;
    let found = ctx.keyspace.stream(&args[2], now)?;
    if found.is_none() && !mkstream {
        return Err(err(KEY_REQUIRED));
    }
    let id = start_id(&args[4], found.as_deref())?;
    let stream = ctx.keyspace.stream_or_create(&args[2], now)?;
    if stream.groups.contains_key(&args[3]) {
        return Err(err("BUSYGROUP Consumer Group name already exists"));
    }
    stream.groups.insert(args[3].clone(), Group::new(id));
    ctx.keyspace.touch();
    Ok(ok())
}

fn destroy(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let removed = existing(ctx, &args[2]).map(|stream| stream.groups.remove(&args[3]).is_some());
    if removed == Ok(true) {
        ctx.keyspace.touch();
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
    let outcome = options(args, false).and_then(|_| {
        let stream = existing(ctx, &args[2])?;
        let last = stream.last_id;
        let group = group_of(stream, &args[2], &args[3])?;
        group.last_delivered = if args[4].as_slice() == b"$" { last } else { parse_id(&args[4], 0)? };
        Ok(ok())
    });
    ctx.keyspace.touch();
    result(outcome)
}

fn result(outcome: Result<Reply, Reply>) -> Exec {
    outcome.unwrap_or_else(|reply| reply).into()
}
