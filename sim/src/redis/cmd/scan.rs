//! `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: keys in key order;
//! the cursor is how many keys were already returned. Like Redis, COUNT bounds
//! the keys looked at, and MATCH / TYPE filter those afterwards.

use super::keys::glob_match;
use super::{Ctx, Exec, is, parse_i64, syntax_error};
use crate::redis::id::parse_u64;
use crate::redis::reply::{Reply, err};

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let Some(cursor) = parse_u64(&args[1]) else { return err("ERR invalid cursor").into() };
    let (mut count, mut pattern, mut kind) = (10_usize, None, None);
    let mut options = args[2..].chunks(2);
    for pair in options.by_ref() {
        let [option, value] = pair else { return syntax_error().into() };
        if is(option, "COUNT") {
            match parse_i64(value) {
                Ok(value) if value >= 1 => count = usize::try_from(value).unwrap_or(usize::MAX),
                Ok(_) => return syntax_error().into(),
                Err(reply) => return reply.into(),
            }
        } else if is(option, "MATCH") {
            pattern = Some(value.clone());
        } else if is(option, "TYPE") {
            kind = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        } else {
            return syntax_error().into();
        }
    }
    let now = ctx.now_ms;
    let keys = ctx.keyspace.keys(now);
    let start = usize::try_from(cursor).unwrap_or(usize::MAX).min(keys.len());
    let end = start.saturating_add(count).min(keys.len());
    let mut found = Vec::new();
    for key in keys.get(start..end).unwrap_or_default() {
        let type_ok = kind
            .as_ref()
            .is_none_or(|kind| ctx.keyspace.get(key, now).is_some_and(|value| value.type_name() == kind.as_str()));
        if type_ok && pattern.as_ref().is_none_or(|pattern| glob_match(pattern, key)) {
            found.push(Reply::Bulk(key.clone()));
        }
    }
    let next = if end >= keys.len() { 0 } else { end };
    Reply::Array(vec![Reply::Bulk(next.to_string().into_bytes()), Reply::Array(found)]).into()
}
