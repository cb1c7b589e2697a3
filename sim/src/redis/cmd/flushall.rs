//! `FLUSHALL [ASYNC|SYNC]`

use super::{Ctx, Exec, is, syntax_error};
use crate::redis::reply::ok;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match args {
        [_] => {}
        [_, mode] if is(mode, "ASYNC") || is(mode, "SYNC") => {}
        _ => return syntax_error().into(),
    }
    ctx.keyspace.clear();
    ok().into()
}
