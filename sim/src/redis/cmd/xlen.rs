//! `XLEN key`

use super::{Ctx, Exec};
use crate::redis::reply::count;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match ctx.keyspace.stream(&args[1], ctx.now_ms) {
        Err(reply) => reply.into(),
        Ok(None) => count(0).into(),
        Ok(Some(stream)) => count(stream.len()).into(),
    }
}
