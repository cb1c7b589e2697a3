//! `ECHO message`

use super::{Ctx, Exec};
use crate::redis::reply::Reply;

pub(super) fn run(_ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    Reply::Bulk(args[1].clone()).into()
}
