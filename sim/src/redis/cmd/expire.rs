//! `EXPIRE key seconds [NX|XX|GT|LT]`

use super::{Ctx, Exec, is, parse_i64, syntax_error};
use crate::redis::reply::{ErrorText, Reply, err};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let seconds = match parse_i64(&args[2]) {
        Ok(seconds) => seconds,
        Err(reply) => return reply.into(),
    };
    let condition = match args.get(3..).unwrap_or_default() {
        [] => None,
        [word] if ["NX", "XX", "GT", "LT"].iter().any(|known| is(word, known)) => Some(word.to_ascii_uppercase()),
        [_] => return ErrorText::new("ERR Unsupported option ").arg(&args[3]).reply().into(),
        _ => return syntax_error().into(),
    };
    let Some(delta_ms) = seconds.checked_mul(1000) else {
        return err("ERR invalid expire time in 'expire' command").into();
    };
    let (key, now) = (&args[1], ctx.now_ms);
    let Some(current) = ctx.keyspace.expiry(key, now) else { return Reply::Int(0).into() };
    let target = i64::try_from(now).unwrap_or(i64::MAX).saturating_add(delta_ms);
    let allowed = match condition.as_deref() {
        Some(b"NX") => current.is_none(),
        Some(b"XX") => current.is_some(),
        Some(b"GT") => current.is_some_and(|at| target > i64::try_from(at).unwrap_or(i64::MAX)),
        Some(b"LT") => current.is_none_or(|at| target < i64::try_from(at).unwrap_or(i64::MAX)),
        _ => true,
    };
    if !allowed {
        return Reply::Int(0).into();
    }
    if target <= i64::try_from(now).unwrap_or(i64::MAX) {
        ctx.keyspace.remove(key, now);
    } else {
        ctx.keyspace.set_expiry(key, u64::try_from(target).unwrap_or(u64::MAX), now);
    }
    Reply::Int(1).into()
}
