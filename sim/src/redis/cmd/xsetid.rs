//! `XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]`: arguments are
//! checked before the key, as Redis 7.0 does.

use super::{Ctx, Exec, is, parse_i64, syntax_error};
use crate::redis::id::{INVALID_ID, StreamId, parse_id};
use crate::redis::reply::{Reply, err, ok};

/// An id as XSETID reads it: `-` and `+` are not ids here.
fn strict_id(text: &[u8]) -> Result<StreamId, Reply> {
    if text == b"-" || text == b"+" { Err(err(INVALID_ID)) } else { parse_id(text, 0) }
}

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    outcome(ctx, args).unwrap_or_else(|reply| reply).into()
}

fn outcome(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let id = strict_id(&args[2])?;
    let (mut entries_added, mut max_deleted) = (None, None);
    let mut at = 3;
    while at < args.len() {
        let more = at + 1 < args.len();
        if is(&args[at], "ENTRIESADDED") && more {
            let value = parse_i64(&args[at + 1])?;
            entries_added = Some(u64::try_from(value).map_err(|_| err("ERR entries_added must be positive"))?);
        } else if is(&args[at], "MAXDELETEDID") && more {
            let deleted = strict_id(&args[at + 1])?;
            if id < deleted {
                return Err(err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
            }
            max_deleted = Some(deleted);
        } else {
            return Err(syntax_error());
        }
        at += 2;
    }
    let stream = ctx.keyspace.stream(&args[1], ctx.now_ms)?.ok_or_else(|| err("ERR no such key"))?;
    if let Some(top) = stream.entries.keys().next_back() {
        if id < *top {
            return Err(err("ERR The ID specified in XSETID is smaller than the target stream top item"));
        }
        if entries_added.is_some_and(|added| (stream.len() as u64) > added) {
            return Err(err("ERR The entries_added specified in XSETID is smaller than the target stream length"));
        }
    }
    stream.last_id = id;
    if let Some(added) = entries_added {
        stream.entries_added = added;
    }
    if let Some(deleted) = max_deleted.filter(|deleted| *deleted != StreamId::MIN) {
        stream.max_deleted = deleted;
    }
    ctx.keyspace.touch();
    Ok(ok())
}
