//! What XREAD and XREADGROUP share: option parsing, id resolution, serving and
//! the decision to block.

use super::{Ctx, Exec, entry_reply, is, parse_i64, syntax_error};
use crate::redis::id::{StreamId, parse_id};
use crate::redis::keyspace::Keyspace;
use crate::redis::reply::{ErrorText, Reply, err};
use crate::redis::stream::{Group, Stream};

/// A read waiting for data: what Redis keeps in `client->bpop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedRead {
    /// 0 blocks forever.
    pub timeout_ms: u64,
    /// The database the keys are in.
    pub db: usize,
    /// Each key once (the first time it was named) with the id entries must
    /// pass (XREAD; `$` resolved when the read blocked).
    pub keys: Vec<(Vec<u8>, StreamId)>,
    /// XREADGROUP's group and consumer.
    pub group: Option<(Vec<u8>, Vec<u8>)>,
    /// XREADGROUP's NOACK.
    pub noack: bool,
    /// COUNT (0: all).
    pub count: usize,
    /// The protocol the reply is framed for.
    pub resp: u8,
}

/// Redis's `serveClientsBlockedOnStreamKey` for one blocked read and the key
/// that was signalled: the reply if the read is done (data, or the error that
/// ends an XREADGROUP whose stream or group went away), `None` to keep waiting.
pub fn serve_blocked(keyspace: &mut Keyspace, read: &BlockedRead, key: &[u8], now_ms: u64) -> Option<Reply> {
    let gt = read.keys.iter().find(|(name, _)| name.as_slice() == key).map(|(_, gt)| *gt)?;
    let stream = match keyspace.stream(key, now_ms) {
        Ok(Some(stream)) => stream,
        _ if read.group.is_some() => return Some(err("UNBLOCKED the stream key no longer exists")),
        _ => return None,
    };
    let limit = if read.count == 0 { usize::MAX } else { read.count };
    let entries = match &read.group {
        None => {
            let start = gt.successor().filter(|_| stream.last_id > gt)?;
            stream.entries.range(start..).take(limit).map(|(id, fields)| entry_reply(*id, Some(fields))).collect()
        }
        Some((group, consumer)) => {
            let Some(last) = stream.groups.get(group).map(|group| group.last_delivered) else {
                return Some(err("NOGROUP the consumer group this client was blocked on no longer exists"));
            };
            if stream.last_id <= last {
                return None;
            }
            deliver_new(stream, group, consumer, limit, read.noack, now_ms)
        }
    };
    keyspace.touch();
    Some(keyed_reply(vec![(Reply::Bulk(key.to_vec()), Reply::Array(entries))], read.resp))
}

/// `[[key, entries], …]` in RESP2, `{key: entries, …}` in RESP3.
fn keyed_reply(served: Vec<(Reply, Reply)>, resp: u8) -> Reply {
    if resp >= 3 {
        Reply::Map(served)
    } else {
        Reply::Array(served.into_iter().map(|(key, entries)| Reply::Array(vec![key, entries])).collect())
    }
}

/// Delivers the entries after the group's last-delivered id to `consumer`.
fn deliver_new(
    stream: &mut Stream,
    group_name: &[u8],
    consumer: &[u8],
    limit: usize,
    noack: bool,
    now: u64,
) -> Vec<Reply> {
    let Some(group) = stream.groups.get_mut(group_name) else { return Vec::new() };
    group.touch(consumer, now);
    let Some(start) = group.last_delivered.successor() else { return Vec::new() };
    let ids: Vec<StreamId> = stream.entries.range(start..).take(limit).map(|(id, _)| *id).collect();
    for id in &ids {
        stream.advance_group(group_name, *id);
        if !noack && let Some(group) = stream.groups.get_mut(group_name) {
            group.deliver(*id, consumer, now);
        }
    }
    ids.iter().map(|id| entry_reply(*id, stream.entries.get(id))).collect()
}

/// A parsed XREAD / XREADGROUP.
#[derive(Debug)]
struct Request<'a> {
    group: Option<(&'a [u8], &'a [u8])>,
    count: usize,
    block_ms: Option<u64>,
    noack: bool,
    keys: &'a [Vec<u8>],
    ids: &'a [Vec<u8>],
}

/// Which entries of one stream to serve.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Entries above this id (XREAD, or a resolved `$`).
    After(StreamId),
    /// `>`: entries the group has not delivered yet.
    New,
    /// The consumer's own pending entries above this id.
    History(StreamId),
}

/// Runs XREAD (`group == false`) or XREADGROUP.
pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>], grouped: bool) -> Exec {
    let outcome = parse(args, grouped).and_then(|request| {
        let cursors = resolve(ctx, &request)?;
        Ok(serve(ctx, &request, &cursors))
    });
    outcome.unwrap_or_else(Exec::Reply)
}

fn parse(args: &[Vec<u8>], grouped: bool) -> Result<Request<'_>, Reply> {
    let mut request = Request { group: None, count: 0, block_ms: None, noack: false, keys: &[], ids: &[] };
    let mut streams_at = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let opt = &args[i];
        if is(opt, "BLOCK") && more > 0 {
            i += 1;
            let timeout = parse_i64(&args[i]).map_err(|_| err("ERR timeout is not an integer or out of range"))?;
            request.block_ms = Some(u64::try_from(timeout).map_err(|_| err("ERR timeout is negative"))?);
        } else if is(opt, "COUNT") && more > 0 {
            i += 1;
            request.count = usize::try_from(parse_i64(&args[i])?).unwrap_or(0);
        } else if is(opt, "STREAMS") && more > 0 {
            streams_at = Some(i + 1);
            break;
        } else if is(opt, "GROUP") && more >= 2 {
            if !grouped {
                return Err(err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."));
            }
            request.group = Some((&args[i + 1], &args[i + 2]));
            i += 2;
        } else if is(opt, "NOACK") {
            if !grouped {
                return Err(err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."));
            }
            request.noack = true;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    let streams_at = streams_at.ok_or_else(syntax_error)?;
    let listed = args.len() - streams_at;
    if listed % 2 != 0 {
        let (name, symbol) = if grouped { ("xreadgroup", '>') } else { ("xread", '$') };
        return Err(Reply::Error(
            format!(
                "ERR Unbalanced '{name}' list of streams: for each stream key an ID or '{symbol}' must be specified."
            )
            .into_bytes(),
        ));
    }
    if grouped && request.group.is_none() {
        return Err(err("ERR Missing GROUP option for XREADGROUP"));
    }
    let ids_at = streams_at + listed / 2;
    request.keys = &args[streams_at..ids_at];
    request.ids = &args[ids_at..];
    Ok(request)
}

fn resolve(ctx: &mut Ctx<'_>, request: &Request<'_>) -> Result<Vec<Cursor>, Reply> {
    let mut cursors = Vec::with_capacity(request.keys.len());
    for (key, id) in request.keys.iter().zip(request.ids) {
        let stream = ctx.keyspace.stream(key, ctx.now_ms)?;
        if let Some((group, _)) = request.group
            && stream.as_ref().is_none_or(|stream| !stream.groups.contains_key(group))
        {
            return Err(ErrorText::new("NOGROUP No such key '")
                .arg(key)
                .text("' or consumer group '")
                .arg(group)
                .text("' in XREADGROUP with GROUP option")
                .reply());
        }
        let cursor = match id.as_slice() {
            b"$" if request.group.is_some() => return Err(err(DOLLAR_IN_GROUP)),
            b"$" => Cursor::After(stream.map_or(StreamId::MIN, |stream| stream.last_id)),
            b">" if request.group.is_none() => return Err(err(GT_WITHOUT_GROUP)),
            b">" => Cursor::New,
            text if request.group.is_some() => Cursor::History(parse_id(text, 0)?),
            text => Cursor::After(parse_id(text, 0)?),
        };
        cursors.push(cursor);
    }
    Ok(cursors)
}

const DOLLAR_IN_GROUP: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the \
                               history of this consumer by specifying a proper ID, or use the > ID to get new \
                               messages. The $ ID would just return an empty result set.";
const GT_WITHOUT_GROUP: &str =
    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";

fn serve(ctx: &mut Ctx<'_>, request: &Request<'_>, cursors: &[Cursor]) -> Exec {
    let mut served = Vec::new();
    let now = ctx.now_ms;
    for (key, cursor) in request.keys.iter().zip(cursors) {
        let Ok(Some(stream)) = ctx.keyspace.stream(key, now) else { continue };
        if let Some(entries) = serve_one(stream, *cursor, request, now) {
            served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
        }
    }
    if request.group.is_some() {
        ctx.keyspace.touch();
    }
    if !served.is_empty() {
        return keyed_reply(served, ctx.session.resp).into();
    }
    match request.block_ms {
        Some(timeout_ms) if !ctx.deny_blocking => Exec::Block(blocked_read(ctx, request, cursors, timeout_ms)),
        _ => Reply::NilArray.into(),
    }
}

/// What the server keeps while the read waits.
fn blocked_read(ctx: &Ctx<'_>, request: &Request<'_>, cursors: &[Cursor], timeout_ms: u64) -> BlockedRead {
    let mut keys: Vec<(Vec<u8>, StreamId)> = Vec::new();
    for (key, cursor) in request.keys.iter().zip(cursors) {
        if keys.iter().all(|(seen, _)| seen != key) {
            let gt = if let Cursor::After(id) = cursor { *id } else { StreamId::MAX };
            keys.push((key.clone(), gt));
        }
    }
    BlockedRead {
        timeout_ms,
        db: ctx.keyspace.selected(),
        keys,
        group: request.group.map(|(group, consumer)| (group.to_vec(), consumer.to_vec())),
        noack: request.noack,
        count: request.count,
        resp: ctx.session.resp,
    }
}

/// The entries to reply with for one stream, or `None` if it is not served.
fn serve_one(stream: &mut Stream, cursor: Cursor, request: &Request<'_>, now: u64) -> Option<Vec<Reply>> {
    let limit = if request.count == 0 { usize::MAX } else { request.count };
    let newest = stream.entries.keys().next_back().copied();
    let Some((group_name, consumer)) = request.group else {
        let Cursor::After(after) = cursor else { return None };
        let start = after.successor()?;
        newest.filter(|newest| *newest > after)?;
        return Some(stream.entries.range(start..).take(limit).map(|(id, f)| entry_reply(*id, Some(f))).collect());
    };
    // Redis 7.0 creates (and marks seen) the consumer only for a read it serves
    // at once: history always, `>` when there is something new.
    let group = stream.groups.get_mut(group_name)?;
    match cursor {
        Cursor::History(after) => {
            group.touch(consumer, now);
            Some(history(group, &stream.entries, consumer, after, limit, now))
        }
        Cursor::New if newest.is_some_and(|newest| newest > group.last_delivered) => {
            Some(deliver_new(stream, group_name, consumer, limit, request.noack, now))
        }
        _ => None,
    }
}

/// The consumer's pending entries above `after`; each delivery is counted again.
fn history(
    group: &mut Group,
    entries: &std::collections::BTreeMap<StreamId, Vec<Vec<u8>>>,
    consumer: &[u8],
    after: StreamId,
    limit: usize,
    now: u64,
) -> Vec<Reply> {
    let Some(start) = after.successor() else { return Vec::new() };
    let ids: Vec<StreamId> =
        group.pending_of(consumer).filter(|(id, _)| **id >= start).take(limit).map(|(id, _)| *id).collect();
    let mut replies = Vec::with_capacity(ids.len());
    for id in ids {
        let fields = entries.get(&id);
        if fields.is_some()
            && let Some(pending) = group.pel.get_mut(&id)
        {
            pending.delivered_ms = now;
            pending.deliveries += 1;
        }
        replies.push(entry_reply(id, fields));
    }
    replies
}
