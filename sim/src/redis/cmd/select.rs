//! `SELECT index`: the simulated server has one database, as if `databases 1`.

use super::{Ctx, Exec, parse_i64};
use crate::redis::reply::{err, ok};

pub(super) fn run(_ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match parse_i64(&args[1]) {
        Err(reply) => reply.into(),
        Ok(0) => ok().into(),
        Ok(_) => err("ERR DB index is out of range").into(),
    }
}
