//! `RENAME key newkey` and `RENAMENX key newkey`: the value moves with its
//! expiry; both keys signal blocked readers (the old one is gone, the new one
//! may now be a stream with data or a stream without their group).

use super::{Ctx, Exec};
use crate::redis::reply::{Reply, err, ok};

pub(super) fn rename(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    move_key(ctx, args, false)
}

pub(super) fn renamenx(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    move_key(ctx, args, true)
}

fn move_key(ctx: &mut Ctx<'_>, args: &[Vec<u8>], nx: bool) -> Exec {
    let (from, to, now) = (&args[1], &args[2], ctx.now_ms);
    if ctx.keyspace.get(from, now).is_none() {
        return err("ERR no such key").into();
    }
    if from == to {
        return if nx { Reply::Int(0).into() } else { ok().into() };
    }
    if nx && ctx.keyspace.get(to, now).is_some() {
        return Reply::Int(0).into();
    }
    let Some((value, expires_ms)) = ctx.keyspace.take(from, now) else { return err("ERR no such key").into() };
    ctx.keyspace.remove(to, now);
    ctx.keyspace.insert(to, value, expires_ms);
    if nx { Reply::Int(1).into() } else { ok().into() }
}
