//! Named counts a run's hosts report back to whoever ran it.
//!
//! A host's checks see things the trace hash folds away — how many times each
//! alert fired, say — that a sweep wants to add up over thousands of seeds to
//! show the drills exercised what they claim to. A [`Tally`] is a handle shared
//! by the world and its hosts; at the end of the run its counts land in
//! [`crate::RunReport::tally`]. Keys are kept sorted, so a report reads the same
//! whatever order hosts counted in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Tally {
    /// Adds `count` to `name` (listing it even when `count` is 0).
    pub fn add(&self, name: &str, count: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry(name.to_owned()).or_default() += count;
    }

    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counts_and_zero_counts_are_listed() {
        let tally = Tally::default();
        let host = tally.clone();
        host.add("alert.b", 2);
        host.add("alert.a", 0);
        tally.add("alert.b", 1);
        assert_eq!(tally.counts(), BTreeMap::from([("alert.a".to_owned(), 0), ("alert.b".to_owned(), 3)]));
    }
}
