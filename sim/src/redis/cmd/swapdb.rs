//! `SWAPDB index index`: blocked readers of both databases look again.

use super::select::db_index;
use super::{Ctx, Exec, parse_i64};
use crate::redis::reply::{err, ok};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let first = match parse_i64(&args[1]) {
        Ok(_) => db_index(&args[1]),
        Err(_) => Err(err("ERR invalid first DB index")),
    };
    let second = match parse_i64(&args[2]) {
        Ok(_) => db_index(&args[2]),
        Err(_) => Err(err("ERR invalid second DB index")),
    };
    let (first, second) = match (first, second) {
        (Ok(first), Ok(second)) => (first, second),
        (Err(reply), _) | (_, Err(reply)) => return reply.into(),
    };
    if first != second {
        ctx.keyspace.swap(first, second);
    }
    ok().into()
}
