//! `XPENDING key group [[IDLE ms] start end count [consumer]]`

use super::{Ctx, Exec, is, no_group, parse_i64, syntax_error};
use crate::redis::id::{StreamId, parse_range_bound};
use crate::redis::reply::{Reply, count};
use crate::redis::stream::Group;

/// The extended form's arguments.
#[derive(Debug)]
struct Extended<'a> {
    min_idle: i64,
    start: StreamId,
    end: StreamId,
    count: usize,
    consumer: Option<&'a [u8]>,
}

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let extended = match args.len() {
        3 => None,
        4 | 5 => return syntax_error().into(),
        _ => match parse_extended(args) {
            Ok(extended) => Some(extended),
            Err(reply) => return reply.into(),
        },
    };
    let now = ctx.now_ms;
    let group = match ctx.keyspace.stream(&args[1], now) {
        Err(reply) => return reply.into(),
        Ok(stream) => stream.and_then(|stream| stream.groups.get(&args[2])),
    };
    let Some(group) = group else { return no_group(&args[1], &args[2]).into() };
    match extended {
        None => summary(group).into(),
        Some(extended) => detail(group, &extended, now).into(),
    }
}

fn parse_extended(args: &[Vec<u8>]) -> Result<Extended<'_>, Reply> {
    let mut at = 3;
    let mut min_idle = 0;
    if is(&args[3], "IDLE") {
        min_idle = parse_i64(&args[4])?;
        if args.len() < 8 {
            return Err(syntax_error());
        }
        at += 2;
    }
    let count = usize::try_from(parse_i64(&args[at + 2])?).unwrap_or(0);
    let start = parse_range_bound(&args[at], true)?;
    let end = parse_range_bound(&args[at + 1], false)?;
    Ok(Extended { min_idle, start, end, count, consumer: args.get(at + 3).map(Vec::as_slice) })
}

fn summary(group: &Group) -> Reply {
    let (Some(first), Some(last)) = (group.pel.keys().next(), group.pel.keys().next_back()) else {
        return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]);
    };
    let mut per_consumer: std::collections::BTreeMap<&[u8], usize> = std::collections::BTreeMap::new();
    for pending in group.pel.values() {
        *per_consumer.entry(pending.consumer.as_slice()).or_default() += 1;
    }
    let consumers = per_consumer
        .into_iter()
        .map(|(name, held)| Reply::Array(vec![Reply::Bulk(name.to_vec()), Reply::Bulk(held.to_string().into_bytes())]))
        .collect();
    Reply::Array(vec![count(group.pel.len()), first.reply(), last.reply(), Reply::Array(consumers)])
}

fn detail(group: &Group, extended: &Extended<'_>, now: u64) -> Reply {
    if extended.start > extended.end {
        return Reply::Array(Vec::new());
    }
    let rows = group
        .pel
        .range(extended.start..=extended.end)
        .filter(|(_, pending)| extended.consumer.is_none_or(|consumer| pending.consumer == consumer))
        .filter(|(_, pending)| {
            i64::try_from(now.saturating_sub(pending.delivered_ms)).unwrap_or(i64::MAX) >= extended.min_idle
        })
        .take(extended.count)
        .map(|(id, pending)| {
            Reply::Array(vec![
                id.reply(),
                Reply::Bulk(pending.consumer.clone()),
                Reply::Int(i64::try_from(now.saturating_sub(pending.delivered_ms)).unwrap_or(i64::MAX)),
                Reply::Int(i64::try_from(pending.deliveries).unwrap_or(i64::MAX)),
            ])
        })
        .collect();
    Reply::Array(rows)
}
