//! `XINFO STREAM key` and `XINFO GROUPS key` (the non-FULL forms).

use super::{Ctx, Exec, Spec, dispatch_sub, entry_reply, sub};
use crate::redis::reply::{Reply, bulk, count, err};
use crate::redis::stream::Stream;

static SUBCOMMANDS: &[Spec] = &[sub("stream", -3, stream_info), sub("groups", 3, groups_info)];

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    dispatch_sub(ctx, args, "xinfo", SUBCOMMANDS)
}

fn lookup<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<&'a mut Stream, Reply> {
    ctx.keyspace.stream(key, ctx.now_ms)?.ok_or_else(|| err("ERR no such key"))
}

fn stream_info(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let stream = match lookup(ctx, &args[2]) {
        Ok(stream) => stream,
        Err(reply) => return reply.into(),
    };
    let first = stream.entries.iter().next().map_or(Reply::Nil, |(id, fields)| entry_reply(*id, Some(fields)));
    let last = stream.entries.iter().next_back().map_or(Reply::Nil, |(id, fields)| entry_reply(*id, Some(fields)));
    let recorded_first = stream.entries.keys().next().copied().unwrap_or_default();
    Reply::Map(vec![
        (bulk("length"), count(stream.len())),
        (bulk("last-generated-id"), stream.last_id.reply()),
        (bulk("max-deleted-entry-id"), stream.max_deleted.reply()),
        (bulk("entries-added"), Reply::Int(i64::try_from(stream.entries_added).unwrap_or(i64::MAX))),
        (bulk("recorded-first-entry-id"), recorded_first.reply()),
        (bulk("groups"), count(stream.groups.len())),
        (bulk("first-entry"), first),
        (bulk("last-entry"), last),
    ])
    .into()
}

fn groups_info(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let stream = match lookup(ctx, &args[2]) {
        Ok(stream) => stream,
        Err(reply) => return reply.into(),
    };
    let groups = stream
        .groups
        .iter()
        .map(|(name, group)| {
            Reply::Map(vec![
                (bulk("name"), Reply::Bulk(name.clone())),
                (bulk("consumers"), count(group.consumers.len())),
                (bulk("pending"), count(group.pel.len())),
                (bulk("last-delivered-id"), group.last_delivered.reply()),
                (bulk("entries-read"), Reply::Nil),
                (bulk("lag"), Reply::Nil),
            ])
        })
        .collect();
    Reply::Array(groups).into()
}
