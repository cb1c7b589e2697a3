//! `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] *|id field value …`

use super::xtrim::{self, TrimArgs};
use super::{Ctx, Exec};
use crate::redis::id::{INVALID_ID, StreamId, parse_u64};
use crate::redis::reply::{Reply, err};

/// How the client gave the id.
#[derive(Debug, Clone, Copy)]
pub(super) enum IdSpec {
    Auto,
    MsOnly(u64),
    Exact(StreamId),
}

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let (trim, spec) = match parse(args) {
        Ok(parsed) => parsed,
        Err(reply) => return reply.into(),
    };
    if let IdSpec::Exact(StreamId::MIN) = spec {
        return err("ERR The ID specified in XADD must be greater than 0-0").into();
    }
    let now = ctx.now_ms;
    let exists = match ctx.keyspace.stream(&args[1], now) {
        Err(reply) => return reply.into(),
        Ok(found) => found.is_some(),
    };
    if !exists && trim.no_mkstream {
        return Reply::Nil.into();
    }
    let stream = match ctx.keyspace.stream_or_create(&args[1], now) {
        Ok(stream) => stream,
        Err(reply) => return reply.into(),
    };
    if stream.last_id == StreamId::MAX {
        return err("ERR The stream has exhausted the last possible ID, unable to add more items").into();
    }
    let id = match next_id(stream.last_id, spec, now) {
        Some(id) => id,
        None => return err("ERR The ID specified in XADD is equal or smaller than the target stream top item").into(),
    };
    stream.append(id, args[trim.id_at + 1..].to_vec(), ctx.server.node_limits);
    trim.apply(stream, ctx.server.node_limits);
    ctx.keyspace.modified(&args[1]);
    ctx.keyspace.signal(&args[1]);
    id.reply().into()
}

fn parse(args: &[Vec<u8>]) -> Result<(TrimArgs, IdSpec), Reply> {
    let trim = xtrim::parse(args, true)?;
    let text = args.get(trim.id_at).ok_or_else(|| err("ERR wrong number of arguments for 'xadd' command"))?;
    let spec = parse_id_spec(text)?;
    let fields = args.len() - trim.id_at - 1;
    if fields < 2 || fields % 2 == 1 {
        return Err(err("ERR wrong number of arguments for 'xadd' command"));
    }
    Ok((trim, spec))
}

/// `*`, `<ms>-*` or a strict id (`-` and `+` are not ids here).
pub(super) fn parse_id_spec(text: &[u8]) -> Result<IdSpec, Reply> {
    match text {
        b"*" => Ok(IdSpec::Auto),
        b"-" | b"+" => Err(err(INVALID_ID)),
        _ => match text.strip_suffix(b"-*") {
            Some(ms) => Ok(IdSpec::MsOnly(parse_u64(ms).ok_or_else(|| err(INVALID_ID))?)),
            None => Ok(IdSpec::Exact(crate::redis::id::parse_id(text, 0)?)),
        },
    }
}

/// The id to add after `last`, or `None` if the requested one is not above it.
fn next_id(last: StreamId, spec: IdSpec, now_ms: u64) -> Option<StreamId> {
    match spec {
        IdSpec::Auto if now_ms > last.ms => Some(StreamId::new(now_ms, 0)),
        IdSpec::Auto => last.successor(),
        IdSpec::MsOnly(ms) if ms == last.ms => last.seq.checked_add(1).map(|seq| StreamId::new(ms, seq)),
        IdSpec::MsOnly(ms) => (ms > last.ms).then_some(StreamId::new(ms, 0)),
        IdSpec::Exact(id) => (id > last).then_some(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same-millisecond numbering, with the clock a parameter (the differential
    /// test against redis-server keeps auto ids in distinct milliseconds).
    #[test]
    fn auto_ids_number_within_a_millisecond_and_never_go_back() {
        let last = StreamId::new(5, 2);
        assert_eq!(next_id(last, IdSpec::Auto, 5), Some(StreamId::new(5, 3)), "same millisecond: next sequence");
        assert_eq!(next_id(last, IdSpec::Auto, 4), Some(StreamId::new(5, 3)), "a clock behind the last id");
        assert_eq!(next_id(last, IdSpec::Auto, 6), Some(StreamId::new(6, 0)), "a new millisecond starts at 0");
        assert_eq!(next_id(StreamId::MAX, IdSpec::Auto, 6), None, "nothing above the largest id");
    }
}
