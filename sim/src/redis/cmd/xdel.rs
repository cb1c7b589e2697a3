//! `XDEL key id [id …]`

use super::{Ctx, Exec};
use crate::redis::id::parse_id;
use crate::redis::reply::{Reply, count};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let stream = match ctx.keyspace.stream(&args[1], ctx.now_ms) {
        Err(reply) => return reply.into(),
        Ok(None) => return Reply::Int(0).into(),
        Ok(Some(stream)) => stream,
    };
    let ids = match args[2..].iter().map(|text| parse_id(text, 0)).collect::<Result<Vec<_>, _>>() {
        Ok(ids) => ids,
        Err(reply) => return reply.into(),
    };
    let deleted = ids.into_iter().filter(|id| stream.delete(*id)).count();
    if deleted > 0 {
        ctx.keyspace.modified(&args[1]);
    }
    count(deleted).into()
}
