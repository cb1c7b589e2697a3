//! `PING [message]`

use super::{Ctx, Exec};
use crate::redis::reply::Reply;

pub(super) fn run(_ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match args {
        [_] => Reply::Simple("PONG".to_owned()).into(),
        [_, message] => Reply::Bulk(message.clone()).into(),
        _ => Reply::Error("ERR wrong number of arguments for 'ping' command".to_owned()).into(),
    }
}
