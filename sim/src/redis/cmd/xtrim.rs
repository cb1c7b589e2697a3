//! `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`, and the trimming
//! options parser XADD shares.

use super::{Ctx, Exec, is, parse_i64, syntax_error};
use crate::redis::id::StreamId;
use crate::redis::reply::{Reply, count, err};
use crate::redis::stream::{NodeLimits, Stream};

/// A trimming strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    MaxLen(usize),
    MinId(StreamId),
}

/// Parsed `MAXLEN`/`MINID`/`LIMIT` options (and, for XADD, where the id is).
#[derive(Debug, Default)]
pub(super) struct TrimArgs {
    pub strategy: Option<Strategy>,
    pub approx: bool,
    pub limit: Option<usize>,
    pub no_mkstream: bool,
    /// XADD only: index of the id argument.
    pub id_at: usize,
}

impl TrimArgs {
    /// Applies the trim; returns how many entries went. Without LIMIT, `~`
    /// trims at most 100 nodes' worth (Redis's default), `=` without bound.
    pub fn apply(&self, stream: &mut Stream, nodes: NodeLimits) -> usize {
        let default_limit = match nodes.max_entries.saturating_mul(100) {
            0 => 10_000,
            limit => limit.min(1_000_000),
        };
        let limit = match self.limit {
            Some(limit) => limit,
            None if self.approx => usize::try_from(default_limit).unwrap_or(usize::MAX),
            None => 0,
        };
        match self.strategy {
            None => 0,
            Some(Strategy::MaxLen(max)) => stream.trim_maxlen(max, self.approx, limit),
            Some(Strategy::MinId(min)) => stream.trim_minid(min, self.approx, limit),
        }
    }
}

/// Parses options from `args[2..]` the way Redis's `streamParseAddOrTrimArgsOrReply` does.
pub(super) fn parse(args: &[Vec<u8>], xadd: bool) -> Result<TrimArgs, Reply> {
    let mut parsed = TrimArgs::default();
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i];
        if xadd && opt.as_slice() == b"*" {
            break;
        } else if (is(opt, "MAXLEN") || is(opt, "MINID")) && more >= 1 {
            if parsed.strategy.is_some() {
                return Err(err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible"));
            }
            let maxlen = is(opt, "MAXLEN");
            parsed.approx = false;
            if more >= 2 && matches!(args[i + 1].as_slice(), b"~" | b"=") {
                parsed.approx = args[i + 1].as_slice() == b"~";
                i += 1;
            }
            i += 1;
            let threshold = args.get(i).ok_or_else(syntax_error)?;
            parsed.strategy = Some(threshold_of(threshold, maxlen)?);
        } else if is(opt, "LIMIT") && more >= 1 {
            i += 1;
            let limit = parse_i64(&args[i])?;
            parsed.limit = Some(usize::try_from(limit).map_err(|_| err("ERR The LIMIT argument must be >= 0."))?);
        } else if xadd && is(opt, "NOMKSTREAM") {
            parsed.no_mkstream = true;
        } else if xadd {
            super::xadd::parse_id_spec(opt)?;
            break;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    parsed.id_at = i;
    if parsed.limit.is_some_and(|limit| limit > 0) && parsed.strategy.is_none() {
        return Err(err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    }
    if !xadd && parsed.strategy.is_none() {
        return Err(err("ERR syntax error, XTRIM must be called with a trimming strategy"));
    }
    if parsed.limit.is_some() && !parsed.approx {
        return Err(err("ERR syntax error, LIMIT cannot be used without the special ~ option"));
    }
    Ok(parsed)
}

fn threshold_of(text: &[u8], maxlen: bool) -> Result<Strategy, Reply> {
    if maxlen {
        let value = parse_i64(text)?;
        let value = usize::try_from(value).map_err(|_| err("ERR The MAXLEN argument must be >= 0."))?;
        Ok(Strategy::MaxLen(value))
    } else {
        match text {
            b"-" | b"+" => Err(err(crate::redis::id::INVALID_ID)),
            _ => Ok(Strategy::MinId(crate::redis::id::parse_id(text, 0)?)),
        }
    }
}

pub(super) fn run(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Exec {
    let parsed = match parse(args, false) {
        Ok(parsed) => parsed,
        Err(reply) => return reply.into(),
    };
    let stream = match ctx.keyspace.stream(&args[1], ctx.now_ms) {
        Err(reply) => return reply.into(),
        Ok(None) => return Reply::Int(0).into(),
        Ok(Some(stream)) => stream,
    };
    let removed = parsed.apply(stream, ctx.server.node_limits);
    if removed > 0 {
        ctx.keyspace.modified(&args[1]);
    }
    count(removed).into()
}
