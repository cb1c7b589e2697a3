//! `DEL key [key …]` and `UNLINK key [key …]` (the same here: memory is freed at once).

use super::{Ctx, Exec};
use crate::redis::reply::count;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let now = ctx.now_ms;
    count(args[1..].iter().filter(|key| ctx.keyspace.remove(key, now)).count()).into()
}
