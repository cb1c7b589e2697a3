//! What XCLAIM and XAUTOCLAIM share: looking up the group and moving one pending
//! entry to a new owner.

use super::{Ctx, no_group};
use crate::redis::id::StreamId;
use crate::redis::reply::Reply;
use crate::redis::stream::Stream;

/// The stream holding the group `args[2]` of key `args[1]`, or NOGROUP / WRONGTYPE.
pub(super) fn stream_with_group<'a>(ctx: &'a mut Ctx<'_>, args: &[Vec<u8>]) -> Result<&'a mut Stream, Reply> {
    match ctx.keyspace.stream(&args[1], ctx.now_ms)? {
        Some(stream) if stream.groups.contains_key(&args[2]) => Ok(stream),
        _ => Err(no_group(&args[1], &args[2])),
    }
}

/// How a claim updates the entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    pub delivered_ms: u64,
    pub retry_count: Option<u64>,
    pub just_id: bool,
}

/// Moves pending `id` of `group` to `consumer`; returns the reply element.
pub(super) fn transfer(
    stream: &mut Stream,
    group: &[u8],
    id: StreamId,
    consumer: &[u8],
    claim: Claim,
) -> Option<Reply> {
    let Stream { entries, groups, .. } = stream;
    let group = groups.get_mut(group)?;
    let pending = group.pel.get_mut(&id)?;
    pending.consumer = consumer.to_vec();
    pending.delivered_ms = claim.delivered_ms;
    match claim.retry_count {
        Some(count) => pending.deliveries = count,
        None if !claim.just_id => pending.deliveries += 1,
        None => {}
    }
    if claim.just_id { Some(id.reply()) } else { Some(super::entry_reply(id, entries.get(&id))) }
}
