//! `FLUSHALL [ASYNC|SYNC]` and `FLUSHDB [ASYNC|SYNC]`

use super::{Ctx, Exec, is, syntax_error};
use crate::redis::reply::ok;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    flush(ctx, args, true)
}

pub(super) fn flushdb(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    flush(ctx, args, false)
}

fn flush(ctx: &mut Ctx<'_>, args: &[Vec<u8>], all: bool) -> Exec {
    match args {
        [_] => {}
        [_, mode] if is(mode, "ASYNC") || is(mode, "SYNC") => {}
        _ => return syntax_error().into(),
    }
    ctx.keyspace.flush(all);
    ok().into()
}
