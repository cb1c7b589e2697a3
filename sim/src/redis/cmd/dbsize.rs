//! `DBSIZE`

use super::{Ctx, Exec};
use crate::redis::reply::count;

pub(super) fn run(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    count(ctx.keyspace.len()).into()
}
