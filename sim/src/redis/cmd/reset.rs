//! `RESET`: the connection as if new: transaction discarded, watches dropped,
//! database 0, RESP2, no name, and (with `requirepass`) not authenticated.

use super::{Ctx, Exec, Session};
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    ctx.keyspace.unwatch_all(ctx.session.id);
    ctx.keyspace.select(0);
    *ctx.session = Session::new(ctx.session.id, ctx.server.requirepass.is_none());
    ctx.session.last_command = "reset".to_owned();
    Reply::Simple("RESET".to_owned()).into()
}
