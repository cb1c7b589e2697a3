//! Seed ranges on the command line: `A..B` (B excluded), `A..=B`, or one seed `N`.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// An inclusive, non-empty range of seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRange(RangeInclusive<u64>);

/// Why a seed range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedRangeError {
    /// A bound is not a non-negative integer.
    #[error("{0:?} is not a seed (a non-negative integer below 2^64)")]
    NotASeed(String),
    /// `A..B` with `B <= A`, or `A..=B` with `B < A`.
    #[error("seed range {0:?} is empty; write A..B with A < B, or A..=B with A <= B")]
    Empty(String),
}

impl SeedRange {
    /// Just `seed`.
    pub fn single(seed: u64) -> Self {
        Self(seed..=seed)
    }

    /// The seeds, lowest first.
    pub fn seeds(&self) -> RangeInclusive<u64> {
        self.0.clone()
    }

    /// How many seeds the range holds: up to 2^64 (`0..=18446744073709551615`),
    /// which no `u64` can count.
    pub fn len(&self) -> u128 {
        u128::from(self.0.end() - self.0.start()) + 1
    }

    /// Always false: a range that parsed holds at least one seed.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl FromStr for SeedRange {
    type Err = SeedRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let seed = |part: &str| part.trim().parse::<u64>().map_err(|_| SeedRangeError::NotASeed(part.to_owned()));
        let empty = || SeedRangeError::Empty(text.to_owned());
        if let Some((start, end)) = text.split_once("..=") {
            let (start, end) = (seed(start)?, seed(end)?);
            return if start <= end { Ok(Self(start..=end)) } else { Err(empty()) };
        }
        if let Some((start, end)) = text.split_once("..") {
            let (start, end) = (seed(start)?, seed(end)?);
            return if start < end { Ok(Self(start..=end - 1)) } else { Err(empty()) };
        }
        let only = seed(text)?;
        Ok(Self(only..=only))
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}..={}", self.0.start(), self.0.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_rejects_the_rest() {
        let cases: [(&str, Result<RangeInclusive<u64>, &str>); 8] = [
            ("0..200", Ok(0..=199)),
            ("5..=5", Ok(5..=5)),
            ("7", Ok(7..=7)),
            ("3..3", Err("empty")),
            ("4..=3", Err("empty")),
            ("a..3", Err("not a seed")),
            ("-1", Err("not a seed")),
            ("1..x", Err("not a seed")),
        ];
        assert_eq!(format!("0..={}", u64::MAX).parse::<SeedRange>().map(|seeds| seeds.len()), Ok(1 << 64));
        for (text, expected) in cases {
            let parsed = text.parse::<SeedRange>();
            match expected {
                Ok(range) => assert_eq!(parsed.map(|seeds| seeds.seeds()), Ok(range), "{text}"),
                Err(fragment) => {
                    let error = parsed.expect_err(text).to_string();
                    assert!(error.contains(fragment), "{text}: {error}");
                }
            }
        }
    }
}
