//! `INFO [section]`: the few fields clients and operators look at. `run_id`
//! changes at every server start, which is how clients notice a restart.

use super::{Ctx, Exec, hello::VERSION};
use crate::redis::reply::Reply;

pub(super) fn run(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    let keys = ctx.keyspace.len(ctx.now_ms);
    let run_id = ctx.run_id;
    let text = format!(
        "# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\nrun_id:{run_id}\r\nesper_simulated:1\r\n\
         \r\n# Persistence\r\nloading:0\r\naof_enabled:1\r\n\r\n# Keyspace\r\ndb0:keys={keys},expires=0\r\n"
    );
    Reply::Bulk(text.into_bytes()).into()
}
