//! `XRANGE key start end [COUNT n]`; XREVRANGE shares the body.

use super::{Ctx, Exec, entry_reply, is, parse_i64, syntax_error};
use crate::redis::id::parse_range_bound;
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    range(ctx, args, false)
}

/// Entries between two bounds, oldest first (or newest first when `reverse`, in
/// which case the client gives `end start`).
pub(super) fn range(ctx: &mut Ctx<'_>, args: &[Vec<u8>], reverse: bool) -> Exec {
    let (first, second) = (&args[2], &args[3]);
    let (start, end) = if reverse { (second, first) } else { (first, second) };
    let bounds = parse_range_bound(start, true).and_then(|s| parse_range_bound(end, false).map(|e| (s, e)));
    let (start, end) = match bounds {
        Ok(bounds) => bounds,
        Err(reply) => return reply.into(),
    };
    let limit = match parse_count(&args[4..]) {
        Ok(limit) => limit,
        Err(reply) => return reply.into(),
    };
    let stream = match ctx.keyspace.stream(&args[1], ctx.now_ms) {
        Err(reply) => return reply.into(),
        Ok(None) => return Reply::Array(Vec::new()).into(),
        Ok(Some(stream)) => stream,
    };
    if limit == Some(0) {
        return Reply::NilArray.into();
    }
    if start > end {
        return Reply::Array(Vec::new()).into();
    }
    let take = limit.unwrap_or(usize::MAX);
    let range = stream.entries.range(start..=end);
    let entries: Vec<Reply> = if reverse {
        range.rev().take(take).map(|(id, fields)| entry_reply(*id, Some(fields))).collect()
    } else {
        range.take(take).map(|(id, fields)| entry_reply(*id, Some(fields))).collect()
    };
    Reply::Array(entries).into()
}

/// `[COUNT n]`; a negative count means zero, as in Redis.
fn parse_count(rest: &[Vec<u8>]) -> Result<Option<usize>, Reply> {
    let mut limit = None;
    let mut iter = rest.iter();
    while let Some(arg) = iter.next() {
        match iter.next() {
            Some(value) if is(arg, "COUNT") => limit = Some(usize::try_from(parse_i64(value)?).unwrap_or(0)),
            _ => return Err(syntax_error()),
        }
    }
    Ok(limit)
}
