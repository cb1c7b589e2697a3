//! `PERSIST key`: 1 if an expiry was removed.

use super::{Ctx, Exec};
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let now = ctx.now_ms;
    let removed = match ctx.keyspace.expiry(&args[1], now) {
        Some(Some(_)) => ctx.keyspace.set_expiry(&args[1], None, now),
        _ => false,
    };
    Reply::Int(i64::from(removed)).into()
}
