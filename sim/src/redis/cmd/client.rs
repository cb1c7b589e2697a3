//! `CLIENT SETINFO | SETNAME | GETNAME | ID`: what client libraries send on connect.

use super::{Ctx, Exec, Spec, dispatch_sub, is, sub};
use crate::redis::reply::{ErrorText, Reply, err, ok};

static SUBCOMMANDS: &[Spec] =
    &[sub("setinfo", 4, setinfo), sub("setname", 3, setname), sub("getname", 2, getname), sub("id", 2, id)];

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    dispatch_sub(ctx, args, "client", SUBCOMMANDS)
}

fn setinfo(_ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    if is(&args[2], "LIB-NAME") || is(&args[2], "LIB-VER") {
        ok().into()
    } else {
        ErrorText::new("ERR Unrecognized option '").arg(&args[2]).text("'").reply().into()
    }
}

fn setname(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    if args[2].iter().any(|byte| *byte <= b' ' || *byte > b'~') {
        return err("ERR Client names cannot contain spaces, newlines or special characters.").into();
    }
    ctx.session.name = args[2].clone();
    ok().into()
}

fn getname(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    if ctx.session.name.is_empty() { Reply::Nil.into() } else { Reply::Bulk(ctx.session.name.clone()).into() }
}

fn id(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    Reply::Int(i64::try_from(ctx.session.id).unwrap_or(i64::MAX)).into()
}
