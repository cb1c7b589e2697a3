//! `XACK key group id [id …]`

use super::{Ctx, Exec};
use crate::redis::id::parse_id;
use crate::redis::reply::{Reply, count};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let now = ctx.now_ms;
    let exists = match ctx.keyspace.stream(&args[1], now) {
        Err(reply) => return reply.into(),
        Ok(found) => found.is_some(),
    };
    let ids = match args[3..].iter().map(|text| parse_id(text, 0)).collect::<Result<Vec<_>, _>>() {
        Ok(ids) => ids,
        Err(reply) => return reply.into(),
    };
    let group = match ctx.keyspace.stream(&args[1], now) {
        Ok(Some(stream)) if exists => stream.groups.get_mut(&args[2]),
        _ => None,
    };
    let Some(group) = group else { return Reply::Int(0).into() };
    let acked = ids.into_iter().filter(|id| group.pel.remove(id).is_some()).count();
    if acked > 0 {
        ctx.keyspace.touch();
    }
    count(acked).into()
}
