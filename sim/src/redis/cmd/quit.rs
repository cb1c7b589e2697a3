//! `QUIT`: `+OK`, then the connection closes (extra arguments are ignored).

use super::{Ctx, Exec};
use crate::redis::reply::ok;

pub(super) fn run(_ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    Exec::ReplyThenClose(ok())
}
