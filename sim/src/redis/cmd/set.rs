//! `SET key value [NX|XX] [GET] [EX s|PX ms|KEEPTTL]`

use super::{Ctx, Exec, is, parse_i64, syntax_error};
use crate::redis::keyspace::{Value, WRONGTYPE};
use crate::redis::reply::{Reply, err, ok};

#[derive(Debug, Default)]
struct Options {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    expires_ms: Option<u64>,
}

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let options = match parse(&args[3..], ctx.now_ms) {
        Ok(options) => options,
        Err(reply) => return reply.into(),
    };
    let (key, now) = (&args[1], ctx.now_ms);
    let old = match ctx.keyspace.get(key, now) {
        None => None,
        Some(Value::Str(bytes)) => Some(bytes.clone()),
        Some(_) if options.get => return err(WRONGTYPE).into(),
        Some(_) => Some(Vec::new()),
    };
    let previous = || if options.get { old.clone().map_or(Reply::Nil, Reply::Bulk) } else { Reply::Nil };
    if (options.nx && old.is_some()) || (options.xx && old.is_none()) {
        return previous().into();
    }
    let expires = if options.keep_ttl { ctx.keyspace.expiry(key, now).flatten() } else { options.expires_ms };
    ctx.keyspace.set_string(key, args[2].clone(), expires);
    if options.get { previous().into() } else { ok().into() }
}

fn parse(rest: &[Vec<u8>], now_ms: u64) -> Result<Options, Reply> {
    let mut options = Options::default();
    let mut iter = rest.iter();
    while let Some(arg) = iter.next() {
        let unit = if is(arg, "EX") {
            Some(1000)
        } else if is(arg, "PX") {
            Some(1)
        } else {
            None
        };
        if let Some(unit) = unit {
            let amount = parse_i64(iter.next().ok_or_else(syntax_error)?)?;
            if amount <= 0 || options.expires_ms.is_some() || options.keep_ttl {
                return Err(err("ERR invalid expire time in 'set' command"));
            }
            let delta = u64::try_from(amount).unwrap_or(0).saturating_mul(unit);
            options.expires_ms = Some(now_ms.saturating_add(delta));
        } else if is(arg, "NX") && !options.xx {
            options.nx = true;
        } else if is(arg, "XX") && !options.nx {
            options.xx = true;
        } else if is(arg, "GET") {
            options.get = true;
        } else if is(arg, "KEEPTTL") && options.expires_ms.is_none() {
            options.keep_ttl = true;
        } else {
            return Err(syntax_error());
        }
    }
    Ok(options)
}
