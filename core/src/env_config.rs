//! The one convention for configuration read from the environment.
//!
//! Core never reads the environment itself (the sim must not depend on it): every
//! config that takes overrides has a `with_lookup`/`from_lookup`/`with_env` taking
//! a lookup, which the real profile fills from the process environment. Values go
//! through the parsers here, so every subsystem accepts the same spellings and
//! refuses a bad value with the same typed error naming the variable, what it held
//! and what would be accepted.

use std::str::FromStr;
use std::time::Duration;

/// An environment variable that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is not valid: expected {expected}")]
pub struct EnvConfigError {
    /// The variable.
    pub name: &'static str,
    /// What it held.
    pub value: String,
    /// What would be accepted.
    pub expected: &'static str,
}

/// What [`flag`] accepts.
pub const FLAG_SPELLINGS: &str = "true or false (also 1/0, yes/no, on/off; any case)";

/// A boolean flag: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case,
/// surrounding blanks ignored; unset is `None`. Anything else (including the empty
/// string, which is neither) is refused rather than guessed at.
pub fn flag(name: &'static str, value: Option<String>) -> Result<Option<bool>, EnvConfigError> {
    let Some(value) = value else { return Ok(None) };
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(EnvConfigError { name, value, expected: FLAG_SPELLINGS }),
    }
}

/// A number in `T`'s decimal syntax (blanks ignored); unset is `None`.
pub fn number<T: FromStr>(
    name: &'static str,
    value: Option<String>,
    expected: &'static str,
) -> Result<Option<T>, EnvConfigError> {
    match value {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| EnvConfigError { name, value: text, expected }),
    }
}

/// What [`parse_duration`] accepts.
pub const DURATION_SPELLINGS: &str =
    "a whole number with a unit, ms, s, m or h (for example 250ms or 5s; 0 alone is zero)";

/// A duration in the one grammar for flags and environment variables: a whole
/// number and a unit (`ms`, `s`, `m`, `h`), blanks around it ignored, `0` alone
/// for zero. A bare number is refused (is `250` milliseconds or seconds?), and
/// so is one too large for a `Duration` of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or(DURATION_SPELLINGS)?;
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits.parse().map_err(|_| DURATION_SPELLINGS)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DURATION_SPELLINGS),
    };
    count.checked_mul(millis_per_unit).map(Duration::from_millis).ok_or(DURATION_SPELLINGS)
}

/// A duration variable in [`parse_duration`]'s grammar; unset is `None`.
pub fn duration(name: &'static str, value: Option<String>) -> Result<Option<Duration>, EnvConfigError> {
    let Some(value) = value else { return Ok(None) };
    match parse_duration(&value) {
        Ok(duration) => Ok(Some(duration)),
        Err(expected) => Err(EnvConfigError { name, value, expected }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_one_grammar_and_refuse_what_is_not_in_it() {
        for (text, expected) in
            [("1", true), ("TRUE", true), (" yes ", true), ("On", true), ("0", false), ("no", false)]
        {
            assert_eq!(flag("X", Some(text.to_owned())), Ok(Some(expected)), "{text:?}");
        }
        assert_eq!(flag("X", None), Ok(None));
        for bad in ["", "2", "enabled", "nein"] {
            let error = flag("X", Some(bad.to_owned())).expect_err(bad);
            assert_eq!((error.name, error.value.as_str(), error.expected), ("X", bad, FLAG_SPELLINGS));
        }
        assert_eq!(number::<u64>("N", Some(" 42 ".to_owned()), "a count"), Ok(Some(42)));
        assert!(number::<u64>("N", Some("-1".to_owned()), "a count").is_err());
    }

    #[test]
    fn durations_have_one_grammar_and_refuse_bare_numbers_and_overflow() {
        for (text, millis) in [("250ms", 250), (" 5s ", 5_000), ("2m", 120_000), ("1h", 3_600_000), ("0", 0), ("0s", 0)]
        {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)), "{text:?}");
        }
        for bad in ["", "250", "5 s", "5sec", "-1s", "1.5s", "ms", "18446744073709551615h"] {
            assert_eq!(parse_duration(bad), Err(DURATION_SPELLINGS), "{bad:?}");
        }
        assert_eq!(duration("D", None), Ok(None));
        let error = duration("D", Some("soon".to_owned())).expect_err("soon");
        assert_eq!((error.name, error.value.as_str(), error.expected), ("D", "soon", DURATION_SPELLINGS));
    }
}
