//! Reads canonical trace lines back (the format `esper_sim::trace` writes and the
//! `docs/timeline.md` documents): `<seconds>.<nanoseconds> <host> <LEVEL> <target>: <fields>`.

use std::time::Duration;

/// One trace line, split into its parts; the fields stay as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLine<'a> {
    /// Sim time of the event.
    pub at: Duration,
    /// The host that raised it (`world` for the fault injector).
    pub host: &'a str,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: Level,
    /// The `tracing` target, e.g. `esper_core::oona::link`.
    pub target: &'a str,
    /// ` name=value` pairs, `message=` first when the event has a message.
    pub fields: &'a str,
}

/// A `tracing` level, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Every level, most severe first (the page indexes its colours by position).
    pub const ALL: [Self; 5] = [Self::Error, Self::Warn, Self::Info, Self::Debug, Self::Trace];

    /// The name as a trace line prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Warn => "WARN",
            Self::Info => "INFO",
            Self::Debug => "DEBUG",
            Self::Trace => "TRACE",
        }
    }
}

/// A line that is not a canonical trace line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {number} is not `<seconds>.<nanoseconds> <host> <LEVEL> <target>: <fields>`: {line:?}")]
pub struct TraceLineError {
    /// 1-based.
    pub number: usize,
    pub line: String,
}

impl<'a> TraceLine<'a> {
    /// Splits `line` (the `number`th of its trace, for the error).
    pub fn parse(line: &'a str, number: usize) -> Result<Self, TraceLineError> {
        Self::split(line).ok_or_else(|| TraceLineError { number, line: line.to_owned() })
    }

    fn split(line: &'a str) -> Option<Self> {
        let mut words = line.splitn(4, ' ');
        let (time, host, level, rest) = (words.next()?, words.next()?, words.next()?, words.next()?);
        // Targets hold `::` but never `: `; an event without fields ends at the colon.
        let (target, fields) = match rest.find(": ") {
            Some(colon) => (&rest[..colon], &rest[colon + 1..]),
            None => (rest.strip_suffix(':')?, ""),
        };
        let level = Level::ALL.into_iter().find(|known| known.name() == level)?;
        Some(Self { at: parse_time(time)?, host, level, target, fields })
    }

    /// The value of a field written without spaces or quotes (numbers, `%`-displayed
    /// names), e.g. `stream` and `offset` of a `esper_sim::net` line.
    pub fn field(&self, name: &str) -> Option<&'a str> {
        let fields = self.fields;
        let start = fields
            .match_indices(' ')
            .map(|(at, _)| at + 1)
            .find(|&at| fields[at..].strip_prefix(name).is_some_and(|after| after.starts_with('=')))?;
        let value = &fields[start + name.len() + 1..];
        Some(value.split(' ').next().unwrap_or(value))
    }

    /// The event's message, when it is the one word `message=<word>` starts with.
    pub fn message_word(&self) -> Option<&'a str> {
        self.fields.strip_prefix(" message=").map(|rest| rest.split(' ').next().unwrap_or(rest))
    }
}

/// `12.345000000` → 12.345 s; exactly nine digits after the point.
fn parse_time(text: &str) -> Option<Duration> {
    let (seconds, nanos) = text.split_once('.')?;
    if nanos.len() != 9 || !seconds.bytes().chain(nanos.bytes()).all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(Duration::new(seconds.parse().ok()?, nanos.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_canonical_line_and_reads_plain_fields() {
        let text = "5.579000000 redis INFO esper_sim::redis: message=simulated Redis starting run_id=24f5 epoch_ms=17";
        let line = TraceLine::parse(text, 1).expect("canonical");
        assert_eq!(line.at, Duration::from_millis(5_579));
        assert_eq!((line.host, line.level, line.target), ("redis", Level::Info, "esper_sim::redis"));
        assert_eq!(line.field("epoch_ms"), Some("17"));
        assert_eq!(line.field("run_id"), Some("24f5"));
        assert_eq!(line.field("id"), None, "a field name is matched whole");
        assert_eq!(line.message_word(), Some("simulated"));
    }

    #[test]
    fn rejects_lines_that_are_not_canonical() {
        for bad in [
            "",
            "5.579 redis INFO esper_sim::redis: message=short nanoseconds",
            "5.579000000 redis LOUD esper_sim::redis: message=unknown level",
            "5.579000000 redis INFO no target separator",
            "x.579000000 redis INFO esper_sim::redis: message=bad seconds",
        ] {
            let error = TraceLine::parse(bad, 7).expect_err(bad);
            assert_eq!(error.number, 7);
        }
    }
}
