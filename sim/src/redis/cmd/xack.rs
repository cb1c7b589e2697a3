//! `XACK key group id [id …]`: a missing key or group acknowledges nothing, even
//! before the ids are parsed (Redis 7.0's order).

use super::{Ctx, Exec};
use crate::redis::id::parse_id;
use crate::redis::reply::{Reply, count};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let group = match ctx.keyspace.stream(&args[1], ctx.now_ms) {
        Err(reply) => return reply.into(),
        Ok(stream) => stream.and_then(|stream| stream.groups.get_mut(&args[2])),
    };
    let Some(group) = group else { return Reply::Int(0).into() };
    let ids = match args[3..].iter().map(|text| parse_id(text, 0)).collect::<Result<Vec<_>, _>>() {
        Ok(ids) => ids,
        Err(reply) => return reply.into(),
    };
    let acked = ids.into_iter().filter(|id| group.pel.remove(id).is_some()).count();
    if acked > 0 {
        ctx.keyspace.touch();
    }
    count(acked).into()
}
