//! Esper metric names → Prometheus metric names, mechanically.
//!
//! Esper-Lite names metrics with dots and unit abbreviations
//! (`tolaria.training.latency_ms`); Prometheus wants snake_case, base units spelled
//! out at the end (`_seconds`, `_bytes`), `_total` only on counters, and no
//! `_count`/`_sum`/`_bucket` endings outside histograms (`promtool check metrics`
//! lints all of these). The rule, applied to every ingested name:
//!
//! 1. camelCase is split, everything lowercased, any character outside
//!    `[a-z0-9]` becomes `_`, runs of `_` collapse; the result gets the `esper_`
//!    prefix;
//! 2. a unit token (`ms`, `us`, `ns`, `s`, `sec`, `min`, `h`, `d`, `b`, `kb`, `mb`,
//!    `gb`, and spelled-out non-base units such as `milliseconds`) is removed and
//!    its base unit appended; values are scaled to it (`latency_ms` 350 →
//!    `latency_seconds` 0.35);
//! 3. a trailing `total` makes the metric a counter (the producer's running
//!    total); anything else is a gauge;
//! 4. a gauge ending in `count`, `sum` or `bucket` gets `_value` appended.
//!
//! Names with two unit tokens, or with nothing left, are refused.

/// What an ingested metric becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct PromName {
    /// The Prometheus metric name.
    pub name: String,
    /// Gauge (last value) or counter (running total).
    pub kind: PromKind,
    /// Esper values × `multiplier` ÷ `divisor` are in the base unit. Kept as a
    /// fraction so that 350 ms is exactly 0.35 s, not 0.35000000000000003.
    pub multiplier: f64,
    /// See `multiplier`.
    pub divisor: f64,
    /// Whether the base unit is seconds (such metrics also get a histogram).
    pub seconds: bool,
}

impl PromName {
    /// `value` (in the Esper unit) in the base unit.
    pub fn to_base(&self, value: f64) -> f64 {
        value * self.multiplier / self.divisor
    }
}

/// The Prometheus type an ingested metric is exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromKind {
    Gauge,
    Counter,
}

/// Unit tokens: (token, base unit, multiplier, divisor to the base unit).
const UNITS: &[(&str, &str, f64, f64)] = &[
    ("ns", "seconds", 1.0, 1e9),
    ("nanoseconds", "seconds", 1.0, 1e9),
    ("us", "seconds", 1.0, 1e6),
    ("microseconds", "seconds", 1.0, 1e6),
    ("ms", "seconds", 1.0, 1e3),
    ("milliseconds", "seconds", 1.0, 1e3),
    ("s", "seconds", 1.0, 1.0),
    ("sec", "seconds", 1.0, 1.0),
    ("secs", "seconds", 1.0, 1.0),
    ("seconds", "seconds", 1.0, 1.0),
    ("m", "seconds", 60.0, 1.0),
    ("min", "seconds", 60.0, 1.0),
    ("minutes", "seconds", 60.0, 1.0),
    ("h", "seconds", 3_600.0, 1.0),
    ("hours", "seconds", 3_600.0, 1.0),
    ("d", "seconds", 86_400.0, 1.0),
    ("days", "seconds", 86_400.0, 1.0),
    ("weeks", "seconds", 604_800.0, 1.0),
    ("b", "bytes", 1.0, 1.0),
    ("bytes", "bytes", 1.0, 1.0),
    ("kb", "bytes", 1e3, 1.0),
    ("kilobytes", "bytes", 1e3, 1.0),
    ("kib", "bytes", 1_024.0, 1.0),
    ("kibibytes", "bytes", 1_024.0, 1.0),
    ("mb", "bytes", 1e6, 1.0),
    ("megabytes", "bytes", 1e6, 1.0),
    ("mib", "bytes", 1_048_576.0, 1.0),
    ("mebibytes", "bytes", 1_048_576.0, 1.0),
    ("gb", "bytes", 1e9, 1.0),
    ("gigabytes", "bytes", 1e9, 1.0),
    ("gib", "bytes", 1_073_741_824.0, 1.0),
    ("gibibytes", "bytes", 1_073_741_824.0, 1.0),
    ("tb", "bytes", 1e12, 1.0),
    ("pb", "bytes", 1e15, 1.0),
];

/// Tokens reserved for the parts of histograms and summaries.
const RESERVED_ENDINGS: [&str; 3] = ["count", "sum", "bucket"];

/// The Prometheus name for Esper metric `esper_name`, or `None` when the rule above
/// refuses it.
pub fn prometheus_name(esper_name: &str) -> Option<PromName> {
    let mut tokens = tokens(esper_name);
    let counter = tokens.last().is_some_and(|last| last == "total");
    if counter {
        tokens.pop();
    }
    let mut units = tokens.iter().enumerate().filter_map(|(at, token)| unit(token).map(|unit| (at, unit)));
    let found = units.next();
    if units.next().is_some() {
        return None;
    }
    let (base, multiplier, divisor) = match found {
        Some((at, (base, multiplier, divisor))) => {
            tokens.remove(at);
            (Some(base), multiplier, divisor)
        }
        None => (None, 1.0, 1.0),
    };
    if tokens.is_empty() {
        return None;
    }
    if base.is_none() && !counter && tokens.last().is_some_and(|last| RESERVED_ENDINGS.contains(&last.as_str())) {
        tokens.push("value".to_owned());
    }
    let mut name = format!("esper_{}", tokens.join("_"));
    if let Some(base) = base {
        name.push('_');
        name.push_str(base);
    }
    if counter {
        name.push_str("_total");
    }
    let kind = if counter { PromKind::Counter } else { PromKind::Gauge };
    Some(PromName { name, kind, multiplier, divisor, seconds: base == Some("seconds") })
}

fn unit(token: &str) -> Option<(&'static str, f64, f64)> {
    UNITS.iter().find(|(unit, ..)| *unit == token).map(|&(_, base, multiplier, divisor)| (base, multiplier, divisor))
}

/// snake_case tokens: camelCase split, lowercased, non-alphanumerics as separators.
fn tokens(name: &str) -> Vec<String> {
    let mut snake = String::with_capacity(name.len() + 8);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            snake.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        snake.push(if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' });
    }
    snake.split('_').filter(|token| !token.is_empty()).map(str::to_owned).collect()
}

/// A label value kept to `max` characters.
pub fn label_value(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(esper: &str, expected: Option<(&str, PromKind, f64)>) {
        let found = prometheus_name(esper).map(|name| (name.name.clone(), name.kind, name.to_base(1.0)));
        let expected = expected.map(|(name, kind, scale)| (name.to_owned(), kind, scale));
        assert_eq!(found, expected, "{esper}");
    }

    #[test]
    fn names_follow_the_rule() {
        use PromKind::{Counter, Gauge};
        let cases = [
            ("tolaria.training.latency_ms", Some(("esper_tolaria_training_latency_seconds", Gauge, 1e-3))),
            ("tolaria.training.loss", Some(("esper_tolaria_training_loss", Gauge, 1.0))),
            ("tolaria.timeout.tamiyo_total", Some(("esper_tolaria_timeout_tamiyo_total", Counter, 1.0))),
            ("tezzeret.compile.retry_count", Some(("esper_tezzeret_compile_retry_count_value", Gauge, 1.0))),
            ("tolaria.rollback.fast_size_bytes", Some(("esper_tolaria_rollback_fast_size_bytes", Gauge, 1.0))),
            ("kasmina.prefetch.latency_ms_p95", Some(("esper_kasmina_prefetch_latency_p95_seconds", Gauge, 1e-3))),
            ("oona.queue.depth", Some(("esper_oona_queue_depth", Gauge, 1.0))),
            ("gpuMemoryMB", Some(("esper_gpu_memory_bytes", Gauge, 1e6))),
            ("x..y--z", Some(("esper_x_y_z", Gauge, 1.0))),
            ("wait.ms.total", Some(("esper_wait_seconds_total", Counter, 1e-3))),
            ("ms", None),
            ("...", None),
            ("a_ms_per_s", None),
        ];
        for (esper, expected) in cases {
            check(esper, expected);
        }
    }
}
