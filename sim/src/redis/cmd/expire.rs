//! `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` `key time [NX|XX|GT|LT]`:
//! one body, Redis's `expireGenericCommand`, with the unit and the base.

use super::{Ctx, Exec, is, parse_i64};
use crate::redis::reply::{ErrorText, Reply, err};

/// How the time argument is read.
#[derive(Debug, Clone, Copy)]
struct Form {
    name: &'static str,
    /// Milliseconds per unit.
    unit_ms: i64,
    /// Relative to now (EXPIRE, PEXPIRE) or absolute (…AT).
    relative: bool,
}

pub(super) fn expire(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    run(ctx, args, Form { name: "expire", unit_ms: 1000, relative: true })
}

pub(super) fn pexpire(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    run(ctx, args, Form { name: "pexpire", unit_ms: 1, relative: true })
}

pub(super) fn expireat(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    run(ctx, args, Form { name: "expireat", unit_ms: 1000, relative: false })
}

pub(super) fn pexpireat(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    run(ctx, args, Form { name: "pexpireat", unit_ms: 1, relative: false })
}

/// NX / XX / GT / LT.
#[derive(Debug, Default, Clone, Copy)]
struct Condition {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>], form: Form) -> Exec {
    outcome(ctx, args, form).unwrap_or_else(Exec::Reply)
}

fn outcome(ctx: &mut Ctx<'_>, args: &[Vec<u8>], form: Form) -> Result<Exec, Reply> {
    let condition = parse_condition(&args[3..])?;
    let amount = parse_i64(&args[2])?;
    let invalid = || Reply::Error(format!("ERR invalid expire time in '{}' command", form.name).into_bytes());
    let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
    let when = amount.checked_mul(form.unit_ms).ok_or_else(invalid)?;
    let when = if form.relative { when.checked_add(now).ok_or_else(invalid)? } else { when };
    let (key, now_ms) = (&args[1], ctx.now_ms);
    let Some(current) = ctx.keyspace.expiry(key, now_ms) else { return Ok(Reply::Int(0).into()) };
    let current = current.map(|at| i64::try_from(at).unwrap_or(i64::MAX));
    let allowed = match current {
        _ if condition.nx => current.is_none(),
        _ if condition.xx && current.is_none() => false,
        Some(at) if condition.gt => when > at,
        None if condition.gt => false,
        Some(at) if condition.lt => when < at,
        _ => true,
    };
    if !allowed {
        return Ok(Reply::Int(0).into());
    }
    if when <= now {
        ctx.keyspace.remove(key, now_ms);
    } else {
        ctx.keyspace.set_expiry(key, Some(u64::try_from(when).unwrap_or(u64::MAX)), now_ms);
    }
    Ok(Reply::Int(1).into())
}

fn parse_condition(options: &[Vec<u8>]) -> Result<Condition, Reply> {
    let mut condition = Condition::default();
    for option in options {
        if is(option, "NX") {
            condition.nx = true;
        } else if is(option, "XX") {
            condition.xx = true;
        } else if is(option, "GT") {
            condition.gt = true;
        } else if is(option, "LT") {
            condition.lt = true;
        } else {
            return Err(ErrorText::new("ERR Unsupported option ").arg(option).reply());
        }
    }
    if condition.nx && (condition.xx || condition.gt || condition.lt) {
        return Err(err("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if condition.gt && condition.lt {
        return Err(err("ERR GT and LT options at the same time are not compatible"));
    }
    Ok(condition)
}
