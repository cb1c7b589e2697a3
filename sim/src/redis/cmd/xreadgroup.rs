//! `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key … id|> …`

use super::{Ctx, Exec, read_common};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    read_common::run(ctx, args, true)
}
