//! `PING [message]`

use super::{Ctx, Exec};
use crate::redis::reply::{Reply, err};

pub(super) fn run(_ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match args {
        [_] => Reply::Simple("PONG".to_owned()).into(),
        [_, message] => Reply::Bulk(message.clone()).into(),
        _ => err("ERR wrong number of arguments for 'ping' command").into(),
    }
}
