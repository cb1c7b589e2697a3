//! `TYPE key`

use super::{Ctx, Exec};
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let name = ctx.keyspace.get(&args[1], ctx.now_ms).map_or("none", |value| value.type_name());
    Reply::Simple(name.to_owned()).into()
}
