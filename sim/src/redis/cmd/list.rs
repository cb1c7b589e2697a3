//! `LPUSH`, `RPUSH`, `LRANGE`, `LLEN`: enough of lists for the `WRONGTYPE`
//! paths a stream application meets (and a list is what `redis-benchmark`
//! pushes to).

use std::collections::VecDeque;

use super::{Ctx, Exec, parse_i64};
use crate::redis::keyspace::Value;
use crate::redis::reply::{Reply, count};

pub(super) fn lpush(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    push(ctx, args, true)
}

pub(super) fn rpush(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    push(ctx, args, false)
}

fn push(ctx: &mut Ctx<'_>, args: &[Vec<u8>], front: bool) -> Exec {
    let (key, now) = (&args[1], ctx.now_ms);
    let list = match ctx.keyspace.list(key, now) {
        Err(reply) => return reply.into(),
        Ok(Some(list)) => list,
        Ok(None) => {
            ctx.keyspace.insert(key, Value::List(VecDeque::new()), None);
            match ctx.keyspace.list(key, now) {
                Ok(Some(list)) => list,
                _ => return crate::redis::reply::err("ERR internal: list vanished after creation").into(),
            }
        }
    };
    for value in &args[2..] {
        if front {
            list.push_front(value.clone());
        } else {
            list.push_back(value.clone());
        }
    }
    let length = list.len();
    ctx.keyspace.modified(key);
    count(length).into()
}

pub(super) fn llen(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    match ctx.keyspace.list(&args[1], ctx.now_ms) {
        Err(reply) => reply.into(),
        Ok(list) => count(list.map_or(0, |list| list.len())).into(),
    }
}

pub(super) fn lrange(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let bounds = parse_i64(&args[2]).and_then(|start| parse_i64(&args[3]).map(|end| (start, end)));
    let (start, end) = match bounds {
        Ok(bounds) => bounds,
        Err(reply) => return reply.into(),
    };
    let list = match ctx.keyspace.list(&args[1], ctx.now_ms) {
        Err(reply) => return reply.into(),
        Ok(None) => return Reply::Array(Vec::new()).into(),
        Ok(Some(list)) => list,
    };
    let len = i64::try_from(list.len()).unwrap_or(i64::MAX);
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { len + end } else { end.min(len - 1) };
    if start > end || start >= len {
        return Reply::Array(Vec::new()).into();
    }
    let (start, end) = (usize::try_from(start).unwrap_or(0), usize::try_from(end).unwrap_or(0));
    Reply::Array(list.iter().skip(start).take(end - start + 1).map(|value| Reply::Bulk(value.clone())).collect()).into()
}
