//! `INCR`, `DECR`, `INCRBY`, `DECRBY`, `APPEND`: enough of strings for the
//! `WRONGTYPE` and overflow paths a stream application meets.

use super::{Ctx, Exec, not_integer, parse_i64};
use crate::redis::keyspace::{Value, WRONGTYPE};
use crate::redis::reply::{Reply, count, err};

pub(super) fn incr(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    add(ctx, &args[1], Ok(1))
}

pub(super) fn decr(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    add(ctx, &args[1], Ok(-1))
}

pub(super) fn incrby(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    add(ctx, &args[1], parse_i64(&args[2]))
}

pub(super) fn decrby(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let delta = parse_i64(&args[2]).and_then(|delta| delta.checked_neg().ok_or_else(|| err(DECR_MIN)));
    add(ctx, &args[1], delta)
}

const DECR_MIN: &str = "ERR decrement would overflow";

fn add(ctx: &mut Ctx<'_>, key: &[u8], delta: Result<i64, Reply>) -> Exec {
    let delta = match delta {
        Ok(delta) => delta,
        Err(reply) => return reply.into(),
    };
    let now = ctx.now_ms;
    let current = match ctx.keyspace.get(key, now) {
        None => 0,
        Some(Value::Str(bytes)) => match parse_i64(bytes) {
            Ok(value) => value,
            Err(_) => return not_integer().into(),
        },
        Some(_) => return err(WRONGTYPE).into(),
    };
    let Some(value) = current.checked_add(delta) else {
        return err("ERR increment or decrement would overflow").into();
    };
    let expires = ctx.keyspace.expiry(key, now).flatten();
    ctx.keyspace.set_string(key, value.to_string().into_bytes(), expires);
    Reply::Int(value).into()
}

pub(super) fn append(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let (key, now) = (&args[1], ctx.now_ms);
    let mut value = match ctx.keyspace.get(key, now) {
        None => Vec::new(),
        Some(Value::Str(bytes)) => bytes.clone(),
        Some(_) => return err(WRONGTYPE).into(),
    };
    value.extend_from_slice(&args[2]);
    let length = value.len();
    let expires = ctx.keyspace.expiry(key, now).flatten();
    ctx.keyspace.set_string(key, value, expires);
    count(length).into()
}
