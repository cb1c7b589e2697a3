//! `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME` `key`: -2 missing, -1 persistent,
//! else the time left (TTL rounds to the nearest second, as Redis does) or the
//! absolute expiry.

use super::{Ctx, Exec};
use crate::redis::reply::Reply;

pub(super) fn ttl(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    report(ctx, args, |at, now| at.saturating_sub(now).saturating_add(500) / 1000)
}

pub(super) fn pttl(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    report(ctx, args, |at, now| at.saturating_sub(now))
}

pub(super) fn expiretime(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    report(ctx, args, |at, _| at / 1000)
}

pub(super) fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    report(ctx, args, |at, _| at)
}

fn report(ctx: &mut Ctx<'_>, args: &[Vec<u8>], of: fn(u64, u64) -> u64) -> Exec {
    let now = ctx.now_ms;
    let value = match ctx.keyspace.expiry(&args[1], now) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => i64::try_from(of(at, now)).unwrap_or(i64::MAX),
    };
    Reply::Int(value).into()
}
