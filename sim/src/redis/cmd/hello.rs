//! `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches RESP2/RESP3,
//! authenticating on the way when asked.

use super::client::valid_name;
use super::{Ctx, Exec, auth, is, parse_i64};
use crate::redis::reply::{ErrorText, Reply, bulk, err};

/// The version this server reports; the differential test pins Redis 7.0.
pub const VERSION: &str = "7.0.15";

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    outcome(ctx, args).unwrap_or_else(Exec::Reply)
}

fn outcome(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Result<Exec, Reply> {
    let mut resp = None;
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            Err(_) => return Err(err("ERR Protocol version is not an integer or out of range")),
            Ok(version @ 2..=3) => resp = u8::try_from(version).ok(),
            Ok(_) => return Err(err("NOPROTO unsupported protocol version")),
        }
    }
    let mut name = None;
    let mut at = 2;
    while let Some(option) = args.get(at) {
        let more = args.len() - at - 1;
        if is(option, "AUTH") && more >= 2 {
            auth::check(ctx, &args[at + 1], &args[at + 2])?;
            at += 2;
        } else if is(option, "SETNAME") && more >= 1 {
            valid_name(&args[at + 1])?;
            name = Some(args[at + 1].clone());
            at += 1;
        } else {
            return Err(ErrorText::new("ERR Syntax error in HELLO option '").arg(option).text("'").reply());
        }
        at += 1;
    }
    if !ctx.session.authenticated {
        return Err(err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO \
                        AUTH <user> <pass> option can be used to authenticate the client and select the RESP \
                        protocol version at the same time"));
    }
    if let Some(name) = name {
        ctx.session.name = name;
    }
    if let Some(resp) = resp {
        ctx.session.resp = resp;
    }
    let id = i64::try_from(ctx.session.id).unwrap_or(i64::MAX);
    Ok(Reply::Map(vec![
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk(VERSION)),
        (bulk("proto"), Reply::Int(i64::from(ctx.session.resp))),
        (bulk("id"), Reply::Int(id)),
        (bulk("mode"), bulk("standalone")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Reply::Array(Vec::new())),
    ])
    .into())
}
