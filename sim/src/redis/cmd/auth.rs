//! `AUTH [user] password` against `requirepass`: without one the default user
//! has no password, as in a stock Redis.

use super::{Ctx, Exec, syntax_error};
use crate::redis::reply::{Reply, err, ok};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let (user, pass) = match args {
        [_, pass] if ctx.server.requirepass.is_some() => (&b"default"[..], pass),
        [_, _] => {
            return err("ERR AUTH <password> called without any password configured for the default user. \
                        Are you sure your configuration is correct?")
            .into();
        }
        [_, user, pass] => (user.as_slice(), pass),
        _ => return syntax_error().into(),
    };
    match check(ctx, user, pass) {
        Ok(()) => ok().into(),
        Err(reply) => reply.into(),
    }
}

/// Authenticates the connection as `user` (only `default` exists) or counts
/// the failure; a failure leaves an earlier authentication in place.
pub(super) fn check(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> Result<(), Reply> {
    let accepted = user == b"default" && ctx.server.requirepass.as_deref().is_none_or(|wanted| same(wanted, pass));
    if accepted {
        ctx.session.authenticated = true;
        Ok(())
    } else {
        ctx.server.stats.auth_failures += 1;
        Err(err("WRONGPASS invalid username-password pair or user is disabled."))
    }
}

/// Compares without stopping at the first difference, so reply timing does
/// not reveal how much of a guess was right.
fn same(wanted: &[u8], given: &[u8]) -> bool {
    let differences = wanted.iter().zip(given).fold(0_u8, |acc, (a, b)| acc | (a ^ b));
    differences == 0 && wanted.len() == given.len()
}
