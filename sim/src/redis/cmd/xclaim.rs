//! `XCLAIM key group consumer min-idle id … [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]`

use super::claim_common::{Claim, stream_with_group, transfer};
use super::{Ctx, Exec, is, parse_i64};
use crate::redis::id::{StreamId, parse_id};
use crate::redis::reply::{ErrorText, Reply, err};
use crate::redis::stream::Pending;

#[derive(Debug, Default)]
struct Options {
    force: bool,
    just_id: bool,
    idle_ms: Option<i64>,
    time_ms: Option<i64>,
    retry_count: Option<u64>,
    last_id: Option<StreamId>,
}

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    claim(ctx, args).unwrap_or_else(Exec::Reply)
}

fn claim(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Result<Exec, Reply> {
    let now = ctx.now_ms;
    stream_with_group(ctx, args)?;
    let min_idle = parse_i64(&args[4]).map_err(|_| err("ERR Invalid min-idle-time argument for XCLAIM"))?.max(0);
    let ids: Vec<StreamId> = args[5..].iter().map_while(|text| parse_id(text, 0).ok()).collect();
    let options = parse_options(&args[5 + ids.len()..])?;
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let delivered = match (options.idle_ms, options.time_ms) {
        (_, Some(time)) => time,
        (Some(idle), None) => now_i - idle,
        (None, None) => now_i,
    };
    let delivered_ms = if delivered < 0 || delivered > now_i { now } else { u64::try_from(delivered).unwrap_or(now) };
    let claim = Claim { delivered_ms, retry_count: options.retry_count, just_id: options.just_id };
    let stream = stream_with_group(ctx, args)?;
    let mut claimed = Vec::new();
    for id in ids {
        let exists = stream.entries.contains_key(&id);
        let group = stream.groups.get_mut(&args[2]).ok_or_else(|| err("ERR internal: group vanished"))?;
        if !exists {
            group.pel.remove(&id);
            continue;
        }
        let pending = group.pel.get(&id).cloned();
        let pending = match pending {
            None if options.force => {
                group.pel.insert(id, Pending { consumer: Vec::new(), delivered_ms: now, deliveries: 0 });
                None
            }
            None => continue,
            Some(pending) => Some(pending),
        };
        if pending.is_some_and(|p| {
            min_idle > 0 && i64::try_from(now.saturating_sub(p.delivered_ms)).unwrap_or(i64::MAX) < min_idle
        }) {
            continue;
        }
        group.touch(&args[3], now);
        claimed.extend(transfer(stream, &args[2], id, &args[3], claim));
    }
    if let Some(last) = options.last_id
        && let Some(group) = stream.groups.get_mut(&args[2])
    {
        group.last_delivered = group.last_delivered.max(last);
    }
    ctx.keyspace.touch();
    Ok(Reply::Array(claimed).into())
}

fn parse_options(rest: &[Vec<u8>]) -> Result<Options, Reply> {
    let mut options = Options::default();
    let mut iter = rest.iter().peekable();
    while let Some(opt) = iter.next() {
        let has_more = iter.peek().is_some();
        let number = |value: Option<&Vec<u8>>, what: &str| {
            parse_i64(value.map_or(&[][..], Vec::as_slice))
                .map_err(|_| Reply::Error(format!("ERR Invalid {what} option argument for XCLAIM").into_bytes()))
        };
        if is(opt, "FORCE") {
            options.force = true;
        } else if is(opt, "JUSTID") {
            options.just_id = true;
        } else if is(opt, "IDLE") && has_more {
            options.idle_ms = Some(number(iter.next(), "IDLE")?);
        } else if is(opt, "TIME") && has_more {
            options.time_ms = Some(number(iter.next(), "TIME")?);
        } else if is(opt, "RETRYCOUNT") && has_more {
            options.retry_count = Some(u64::try_from(number(iter.next(), "RETRYCOUNT")?).unwrap_or(0));
        } else if is(opt, "LASTID") && has_more {
            options.last_id = Some(parse_id(iter.next().map_or(&[][..], Vec::as_slice), 0)?);
        } else {
            return Err(ErrorText::new("ERR Unrecognized XCLAIM option '").arg(opt).text("'").reply());
        }
    }
    Ok(options)
}
