//! Flags that take a time: every one reads it in the one grammar of
//! [`esper_core::env_config::parse_duration`] (`250ms`, `5s`, `2m`, `1h`, `0`),
//! the grammar the environment variables use, so no flag takes a bare number whose
//! unit the reader has to guess. A value outside the grammar or the flag's range is
//! a clap error: exit 2, naming the flag, the value and what is accepted.

use std::ops::RangeInclusive;
use std::time::Duration;

use esper_core::env_config::{DURATION_SPELLINGS, parse_duration};

/// clap value parser: any duration in the grammar.
pub(crate) fn any(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|_| format!("expected {DURATION_SPELLINGS}"))
}

/// clap value parser: a duration in the grammar within `range` (both ends included).
pub(crate) fn within(
    range: RangeInclusive<Duration>,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    assert!(range.start() <= range.end(), "an empty range would refuse every value");
    move |text| {
        let duration = any(text)?;
        if range.contains(&duration) {
            Ok(duration)
        } else {
            Err(format!("expected a duration from {} to {}", spell(*range.start()), spell(*range.end())))
        }
    }
}

/// `duration` in the grammar, in its largest whole unit (`0`, `250ms`, `60s`, `1h`).
fn spell(duration: Duration) -> String {
    let millis = millis(duration);
    if millis == 0 {
        return "0".to_owned();
    }
    let units = [(3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    let (per_unit, unit) = units.into_iter().find(|(per_unit, _)| millis % per_unit == 0).unwrap_or((1, "ms"));
    format!("{}{unit}", millis / per_unit)
}

/// Whole milliseconds, for the settings that count them (`BurstConfig`). The
/// grammar counts whole milliseconds and refuses more than a `u64` of them, so
/// nothing is lost; a larger value from elsewhere saturates.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_takes_the_grammar_and_its_range_only() {
        let step_timeout = within(Duration::from_millis(1)..=Duration::from_secs(60));
        assert_eq!(step_timeout("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(step_timeout("60s"), Ok(Duration::from_secs(60)));
        for bad in ["50", "0", "61s", "1.5s", ""] {
            assert!(step_timeout(bad).is_err(), "{bad:?} accepted");
        }
        assert!(any("250").is_err_and(|message| message.contains("250ms")));
        assert_eq!(millis(any("2m").expect("in the grammar")), 120_000);
        let spelled: Vec<String> =
            [0, 250, 60_000, 90_000, 3_600_000].map(|ms| spell(Duration::from_millis(ms))).into();
        assert_eq!(spelled, ["0", "250ms", "1m", "90s", "1h"]);
    }
}
