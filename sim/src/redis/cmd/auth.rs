//! `AUTH [user] password`: the default user has no password, as in a stock Redis.

use super::{Ctx, Exec, syntax_error};
use crate::redis::reply::{Reply, err, ok};

pub(super) fn run(_ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match args {
        [_, _] => err("ERR AUTH <password> called without any password configured for the default user. \
                       Are you sure your configuration is correct?")
        .into(),
        [_, user, pass] => check(user, pass).map_or_else(Exec::Reply, |()| ok().into()),
        _ => syntax_error().into(),
    }
}

/// The passwordless `default` user accepts any password; no other user exists.
pub(super) fn check(user: &[u8], _pass: &[u8]) -> Result<(), Reply> {
    if user == b"default" { Ok(()) } else { Err(err("WRONGPASS invalid username-password pair or user is disabled.")) }
}
