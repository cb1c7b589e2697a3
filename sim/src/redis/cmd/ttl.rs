//! `TTL key`: -2 missing, -1 persistent, else seconds left (rounded as Redis does).

use super::{Ctx, Exec};
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let now = ctx.now_ms;
    let ttl = match ctx.keyspace.expiry(&args[1], now) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => i64::try_from(at.saturating_sub(now).saturating_add(500) / 1000).unwrap_or(i64::MAX),
    };
    Reply::Int(ttl).into()
}
