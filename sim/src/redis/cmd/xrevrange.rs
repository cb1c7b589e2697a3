//! `XREVRANGE key end start [COUNT n]`

use super::{Ctx, Exec, xrange};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    xrange::range(ctx, args, true)
}
