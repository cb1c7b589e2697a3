//! `INFO [section]`: the few fields clients and operators look at.

use super::{Ctx, Exec, hello::VERSION};
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    let keys = ctx.keyspace.len(ctx.now_ms);
    let text = format!(
        "# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\nesper_simulated:1\r\n\
         \r\n# Persistence\r\nloading:0\r\naof_enabled:1\r\n\r\n# Keyspace\r\ndb0:keys={keys},expires=0\r\n"
    );
    Reply::Bulk(text.into_bytes()).into()
}
