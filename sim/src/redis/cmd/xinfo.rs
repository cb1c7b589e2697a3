//! `XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP`

use super::{Ctx, Exec, Spec, entry_reply, help, is, no_such_group, parse_i64, sub, subcommand_syntax_error};
use crate::redis::reply::{Reply, bulk, count, err};
use crate::redis::stream::{Group, Stream};

pub(super) static SUBCOMMANDS: &[Spec] = &[
    sub("stream", -3, stream_info),
    sub("groups", 3, groups_info),
    sub("consumers", 4, consumers_info),
    sub("help", 2, help_text),
];

fn lookup<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<&'a mut Stream, Reply> {
    ctx.keyspace.stream(key, ctx.now_ms)?.ok_or_else(|| err("ERR no such key"))
}

fn int(value: u64) -> Reply {
    Reply::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

fn stream_info(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let outcome = lookup(ctx, &args[2]).and_then(|stream| {
        let full = match &args[3..] {
            [] => None,
            [full] if is(full, "FULL") => Some(10),
            [full, word, value] if is(full, "FULL") && is(word, "COUNT") => Some(parse_i64(value)?.max(0)),
            _ => return Err(subcommand_syntax_error(args)),
        };
        Ok(match full {
            None => summary(stream),
            Some(limit) => full_info(stream, usize::try_from(limit).unwrap_or(usize::MAX)),
        })
    });
    outcome.unwrap_or_else(|reply| reply).into()
}

/// The fields both forms start with.
fn header(stream: &Stream) -> Vec<(Reply, Reply)> {
    vec![
        (bulk("length"), count(stream.len())),
        (bulk("radix-tree-keys"), count(stream.node_count())),
        (bulk("radix-tree-nodes"), count(stream.radix_tree_nodes())),
        (bulk("last-generated-id"), stream.last_id.reply()),
        (bulk("max-deleted-entry-id"), stream.max_deleted.reply()),
        (bulk("entries-added"), int(stream.entries_added)),
        (bulk("recorded-first-entry-id"), stream.first_id.reply()),
    ]
}

fn summary(stream: &Stream) -> Reply {
    let first = stream.entries.iter().next().map_or(Reply::Nil, |(id, fields)| entry_reply(*id, Some(fields)));
    let last = stream.entries.iter().next_back().map_or(Reply::Nil, |(id, fields)| entry_reply(*id, Some(fields)));
    let mut fields = header(stream);
    fields.extend([
        (bulk("groups"), count(stream.groups.len())),
        (bulk("first-entry"), first),
        (bulk("last-entry"), last),
    ]);
    Reply::Map(fields)
}

/// FULL: entries and every group's PEL and consumers, each list cut at `limit` (0: all).
fn full_info(stream: &Stream, limit: usize) -> Reply {
    let take = if limit == 0 { usize::MAX } else { limit };
    let entries = stream.entries.iter().take(take).map(|(id, fields)| entry_reply(*id, Some(fields))).collect();
    let groups = stream.groups.iter().map(|(name, group)| full_group(stream, name, group, take)).collect();
    let mut fields = header(stream);
    fields.extend([(bulk("entries"), Reply::Array(entries)), (bulk("groups"), Reply::Array(groups))]);
    Reply::Map(fields)
}

fn full_group(stream: &Stream, name: &[u8], group: &Group, take: usize) -> Reply {
    let pending = group
        .pel
        .iter()
        .take(take)
        .map(|(id, pending)| {
            Reply::Array(vec![
                id.reply(),
                Reply::Bulk(pending.consumer.clone()),
                int(pending.delivered_ms),
                int(pending.deliveries),
            ])
        })
        .collect();
    let consumers = group
        .consumers
        .iter()
        .map(|(consumer, state)| {
            let own: Vec<Reply> = group
                .pending_of(consumer)
                .take(take)
                .map(|(id, pending)| Reply::Array(vec![id.reply(), int(pending.delivered_ms), int(pending.deliveries)]))
                .collect();
            Reply::Map(vec![
                (bulk("name"), Reply::Bulk(consumer.clone())),
                (bulk("seen-time"), int(state.seen_ms)),
                (bulk("pel-count"), count(group.pending_of(consumer).count())),
                (bulk("pending"), Reply::Array(own)),
            ])
        })
        .collect();
    Reply::Map(vec![
        (bulk("name"), Reply::Bulk(name.to_vec())),
        (bulk("last-delivered-id"), group.last_delivered.reply()),
        (bulk("entries-read"), group.entries_read.map_or(Reply::Nil, int)),
        (bulk("lag"), stream.lag(group).map_or(Reply::Nil, Reply::Int)),
        (bulk("pel-count"), count(group.pel.len())),
        (bulk("pending"), Reply::Array(pending)),
        (bulk("consumers"), Reply::Array(consumers)),
    ])
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
                (bulk("entries-read"), group.entries_read.map_or(Reply::Nil, int)),
                (bulk("lag"), stream.lag(group).map_or(Reply::Nil, Reply::Int)),
            ])
        })
        .collect();
    Reply::Array(groups).into()
}

fn consumers_info(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let now = ctx.now_ms;
    let stream = match lookup(ctx, &args[2]) {
        Ok(stream) => stream,
        Err(reply) => return reply.into(),
    };
    let Some(group) = stream.groups.get(&args[3]) else { return no_such_group(&args[2], &args[3]).into() };
    let consumers = group
        .consumers
        .iter()
        .map(|(name, state)| {
            Reply::Map(vec![
                (bulk("name"), Reply::Bulk(name.clone())),
                (bulk("pending"), count(group.pending_of(name).count())),
                (bulk("idle"), int(now.saturating_sub(state.seen_ms))),
            ])
        })
        .collect();
    Reply::Array(consumers).into()
}

fn help_text(_ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    help(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    )
}
