//! `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`. Queueing itself happens in
//! [`super::dispatch`], which also dooms a transaction when a command is
//! refused while queued; EXEC runs the queue with blocking turned off.

use super::{Ctx, Exec, Multi, run_queued};
use crate::redis::reply::{Reply, err, ok};

pub(super) fn multi(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    if ctx.session.multi.is_some() {
        return err("ERR MULTI calls can not be nested").into();
    }
    ctx.session.multi = Some(Multi::default());
    ok().into()
}

pub(super) fn exec(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    let Some(multi) = ctx.session.multi.take() else { return err("ERR EXEC without MULTI").into() };
    let dirty = ctx.keyspace.unwatch_all(ctx.session.id);
    if multi.aborted {
        return err("EXECABORT Transaction discarded because of previous errors.").into();
    }
    if dirty {
        return Reply::NilArray.into();
    }
    ctx.deny_blocking = true;
    let mut replies = Vec::with_capacity(multi.queue.len());
    for args in &multi.queue {
        let reply = match run_queued(ctx, args) {
            Exec::Reply(reply) | Exec::ReplyThenClose(reply) => reply,
            Exec::Block(_) | Exec::Close => Reply::NilArray,
        };
        replies.push(reply);
    }
    ctx.deny_blocking = false;
    ctx.session.last_command = "exec".to_owned();
    Reply::Array(replies).into()
}

pub(super) fn discard(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    if ctx.session.multi.take().is_none() {
        return err("ERR DISCARD without MULTI").into();
    }
    ctx.keyspace.unwatch_all(ctx.session.id);
    ok().into()
}

pub(super) fn watch(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    if ctx.session.multi.is_some() {
        return err("ERR WATCH inside MULTI is not allowed").into();
    }
    for key in &args[1..] {
        ctx.keyspace.watch(ctx.session.id, key);
    }
    ok().into()
}

pub(super) fn unwatch(ctx: &mut Ctx<'_>, _args: &[Vec<u8>]) -> Exec {
    ctx.keyspace.unwatch_all(ctx.session.id);
    ok().into()
}
