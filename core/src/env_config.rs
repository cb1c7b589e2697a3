//! The one convention for configuration read from the environment.
//!
//! Core never reads the environment itself (the sim must not depend on it): every
//! config that takes overrides has a `with_lookup`/`from_lookup`/`with_env` taking
//! a lookup, which the real profile fills from the process environment. Values go
//! through the parsers here, so every subsystem accepts the same spellings and
//! refuses a bad value with the same typed error naming the variable, what it held
//! and what would be accepted.

use std::str::FromStr;

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
}
