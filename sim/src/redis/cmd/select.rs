//! `SELECT index` over the 16 databases.

use super::{Ctx, Exec};
use crate::redis::keyspace::DATABASES;
use crate::redis::reply::{err, ok};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match db_index(&args[1]) {
        Ok(db) => {
            ctx.session.db = db;
            ctx.keyspace.select(db);
            ok().into()
        }
        Err(reply) => reply.into(),
    }
}

/// A database index as SELECT and SWAPDB read it; past the 16 databases
/// Redis's out-of-range error.
pub(super) fn db_index(text: &[u8]) -> Result<usize, crate::redis::reply::Reply> {
    let index = super::parse_i64(text)?;
    usize::try_from(index).ok().filter(|db| *db < DATABASES).ok_or_else(|| err("ERR DB index is out of range"))
}
