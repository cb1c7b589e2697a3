//! `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches RESP2/RESP3.

use super::{Ctx, Exec, auth, is, parse_i64, syntax_error};
use crate::redis::reply::{ErrorText, Reply, bulk, err};

/// The version this server reports; the differential test pins Redis 7.0.
pub const VERSION: &str = "7.0.15";

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let mut resp = ctx.session.resp;
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            Err(_) => return err("ERR Protocol version is not an integer or out of range").into(),
            Ok(version @ 2..=3) => resp = version as u8,
            Ok(_) => return err("NOPROTO unsupported protocol version").into(),
        }
    }
    let mut name = None;
    let mut rest = args.iter().skip(2);
    while let Some(option) = rest.next() {
        if is(option, "AUTH") {
            let (Some(user), Some(pass)) = (rest.next(), rest.next()) else { return syntax_error().into() };
            if let Err(reply) = auth::check(user, pass) {
                return reply.into();
            }
        } else if is(option, "SETNAME") {
            let Some(value) = rest.next() else { return syntax_error().into() };
            name = Some(value.clone());
        } else {
            return ErrorText::new("ERR Syntax error in HELLO option '").arg(option).text("'").reply().into();
        }
    }
    ctx.session.resp = resp;
    if let Some(name) = name {
        ctx.session.name = name;
    }
    let id = i64::try_from(ctx.session.id).unwrap_or(i64::MAX);
    Reply::Map(vec![
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk(VERSION)),
        (bulk("proto"), Reply::Int(i64::from(resp))),
        (bulk("id"), Reply::Int(id)),
        (bulk("mode"), bulk("standalone")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Reply::Array(Vec::new())),
    ])
    .into()
}
