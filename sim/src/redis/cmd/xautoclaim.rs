//! `XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]`: claims stale
//! pending entries in id order, dropping those whose entry was deleted.

use super::claim_common::{Claim, stream_with_group, transfer};
use super::{Ctx, Exec, is, parse_i64, syntax_error};
use crate::redis::id::{StreamId, parse_range_bound};
use crate::redis::reply::{Reply, err};

/// Redis scans at most this many PEL entries per requested entry.
const ATTEMPTS_FACTOR: usize = 10;

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    autoclaim(ctx, args).map_or_else(Exec::Reply, Exec::Reply)
}

fn autoclaim(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let now = ctx.now_ms;
    let min_idle = parse_i64(&args[4]).map_err(|_| err("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?.max(0);
    let start = parse_range_bound(&args[5], true)?;
    let (mut count, just_id) = parse_options(&args[6..])?;
    let stream = stream_with_group(ctx, args)?;
    let mut attempts = count.saturating_mul(ATTEMPTS_FACTOR);
    let scan: Vec<StreamId> =
        stream.groups.get(&args[2]).map_or_else(Vec::new, |g| g.pel.range(start..).map(|(id, _)| *id).collect());
    let mut scanned = 0;
    let (mut claimed, mut deleted) = (Vec::new(), Vec::new());
    let claim = Claim { delivered_ms: now, retry_count: None, just_id };
    while attempts > 0 && count > 0 && scanned < scan.len() {
        attempts -= 1;
        let id = scan[scanned];
        scanned += 1;
        let exists = stream.entries.contains_key(&id);
        let group = stream.groups.get_mut(&args[2]).ok_or_else(|| err("ERR internal: group vanished"))?;
        if !exists {
            group.pel.remove(&id);
            deleted.push(id.reply());
            count -= 1;
            continue;
        }
        let idle = group.pel.get(&id).map_or(0, |p| now.saturating_sub(p.delivered_ms));
        if min_idle > 0 && i64::try_from(idle).unwrap_or(i64::MAX) < min_idle {
            continue;
        }
        group.touch(&args[3], now);
        claimed.extend(transfer(stream, &args[2], id, &args[3], claim));
        count -= 1;
    }
    let cursor = scan.get(scanned).copied().unwrap_or(StreamId::MIN);
    ctx.keyspace.touch();
    Ok(Reply::Array(vec![cursor.reply(), Reply::Array(claimed), Reply::Array(deleted)]))
}

fn parse_options(rest: &[Vec<u8>]) -> Result<(usize, bool), Reply> {
    let (mut count, mut just_id) = (100, false);
    let mut iter = rest.iter().peekable();
    while let Some(opt) = iter.next() {
        if is(opt, "COUNT") && iter.peek().is_some() {
            let value =
                parse_i64(iter.next().map_or(&[][..], Vec::as_slice)).map_err(|_| err("ERR COUNT must be > 0"))?;
            count = usize::try_from(value)
                .ok()
                .filter(|value| *value >= 1 && *value <= (i64::MAX as usize) / 16)
                .ok_or_else(|| err("ERR COUNT must be > 0"))?;
        } else if is(opt, "JUSTID") {
            just_id = true;
        } else {
            return Err(syntax_error());
        }
    }
    Ok((count, just_id))
}
