//! `GET key`

use super::{Ctx, Exec};
use crate::redis::keyspace::{Value, WRONGTYPE};
use crate::redis::reply::{Reply, err};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match ctx.keyspace.get(&args[1], ctx.now_ms) {
        None => Reply::Nil.into(),
        Some(Value::Str(bytes)) => Reply::Bulk(bytes.clone()).into(),
        Some(_) => err(WRONGTYPE).into(),
    }
}
