//! Folds canonical lines into the run's hash.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::canonical::format_sim_time;
use super::{TAIL_LINES, TraceMode};

/// Events one instant of sim time may hold before the run is judged livelocked.
/// Sim time stands still while code runs, so a loop that never awaits anything
/// pending logs at one instant for ever; the world cannot preempt it, but the
/// loop's own events reach the recorder, which stops it at this many. The
/// busiest instant of any registered scenario holds 603 (`kasmina-prefetch`
/// issuing 300 requests at 0 s, seeds 0–2): the limit is 165 times that.
pub const EVENTS_PER_INSTANT_LIMIT: u64 = 100_000;

/// The recorder behind a [`super::TraceSubscriber`]. The world also tells it the sim time
/// for events raised outside any host (fault injection), since turmoil only knows
/// the time inside a host.
#[derive(Debug)]
pub struct TraceRecorder {
    mode: TraceMode,
    hasher: Sha256,
    events: u64,
    lines: Vec<String>,
    tail: VecDeque<String>,
    /// Lines of the targets a log check watches, by target, in any mode.
    watched: BTreeMap<String, Vec<String>>,
    world_time: Duration,
    instant: Duration,
    at_instant: u64,
}

/// What a finished recording hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    /// Lower-case hex SHA-256 over every line.
    pub hash: String,
    /// Number of lines folded in.
    pub events: u64,
    /// Every line, in [`TraceMode::Full`]; empty otherwise.
    pub lines: Vec<String>,
    /// The last lines, for failure reports.
    pub tail: Vec<String>,
    /// Every line of each watched target ([`TraceRecorder::watch`]).
    pub watched: BTreeMap<String, Vec<String>>,
}

impl TraceRecorder {
    /// An empty recording.
    pub fn new(mode: TraceMode) -> Self {
        Self {
            mode,
            hasher: Sha256::new(),
            events: 0,
            lines: Vec::new(),
            tail: VecDeque::with_capacity(TAIL_LINES),
            watched: BTreeMap::new(),
            world_time: Duration::ZERO,
            instant: Duration::ZERO,
            at_instant: 0,
        }
    }

    /// Sim time to stamp on events raised outside a host.
    pub fn set_world_time(&mut self, now: Duration) {
        debug_assert!(now >= self.world_time, "sim time went backwards");
        self.world_time = now;
    }

    /// The time last set with [`Self::set_world_time`].
    pub fn world_time(&self) -> Duration {
        self.world_time
    }

    /// Keeps every line of events with `target`, whatever the mode: what a log
    /// check ([`crate::World::check_log`]) reads once the run is over.
    pub fn watch(&mut self, target: &str) {
        self.watched.entry(target.to_owned()).or_default();
    }

    /// Folds one line, an event of `target` at sim time `at`, into the hash and
    /// keeps it as the mode and the watched targets say.
    pub fn record(&mut self, at: Duration, target: &str, line: String) {
        if at == self.instant {
            self.at_instant += 1;
        } else {
            self.instant = at;
            self.at_instant = 1;
        }
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.events += 1;
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        if self.mode == TraceMode::Full {
            self.lines.push(line.clone());
        }
        if let Some(watched) = self.watched.get_mut(target) {
            watched.push(line.clone());
        }
        self.tail.push_back(line);
    }

    /// What stopped the run, when the instant of the last event holds more than
    /// [`EVENTS_PER_INSTANT_LIMIT`] events: a livelock, described with the last one.
    pub fn livelock(&self) -> Option<String> {
        (self.at_instant > EVENTS_PER_INSTANT_LIMIT).then(|| {
            format!(
                "livelock: {} events at sim time {} s without time moving (more than {EVENTS_PER_INSTANT_LIMIT}); the last: {}",
                self.at_instant,
                format_sim_time(self.instant),
                self.tail.back().map_or("", String::as_str)
            )
        })
    }

    /// Ends the recording.
    pub fn finish(self) -> TraceSummary {
        let digest = self.hasher.finalize();
        let hash = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        TraceSummary { hash, events: self.events, lines: self.lines, tail: self.tail.into(), watched: self.watched }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_line_and_tail_is_bounded() {
        let record = |lines: &[&str]| {
            let mut recorder = TraceRecorder::new(TraceMode::Hash);
            for line in lines {
                recorder.record(Duration::ZERO, "test", (*line).to_owned());
            }
            recorder.finish()
        };
        let many: Vec<String> = (0..100).map(|index| format!("line {index}")).collect();
        let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let summary = record(&many_refs);
        assert_eq!(summary.events, 100);
        assert_eq!(summary.tail.len(), TAIL_LINES);
        assert_eq!(summary.tail.last().map(String::as_str), Some("line 99"));
        assert!(summary.lines.is_empty());
        assert_ne!(record(&["a", "b"]).hash, record(&["b", "a"]).hash);
        // The separator is part of the hash: "ab" is not "a" then "b".
        assert_ne!(record(&["ab"]).hash, record(&["a", "b"]).hash);
    }

    #[test]
    fn a_watched_target_keeps_its_lines_in_hash_mode_and_no_other_target_does() {
        let mut recorder = TraceRecorder::new(TraceMode::Hash);
        recorder.watch("esper_core::wal");
        recorder.record(Duration::ZERO, "esper_core::wal", "cut".to_owned());
        recorder.record(Duration::ZERO, "esper_core::wal::frame", "nested".to_owned());
        recorder.record(Duration::ZERO, "esper_sim::net", "send".to_owned());
        let summary = recorder.finish();
        assert_eq!(summary.watched.get("esper_core::wal"), Some(&vec!["cut".to_owned()]));
        assert_eq!(summary.watched.len(), 1);
        assert!(summary.lines.is_empty());
    }

    #[test]
    fn an_instant_past_the_event_limit_is_a_livelock_and_time_moving_resets_the_count() {
        let mut recorder = TraceRecorder::new(TraceMode::Hash);
        let at = Duration::from_millis(1_500);
        for _ in 0..EVENTS_PER_INSTANT_LIMIT {
            recorder.record(at, "test", "spin".to_owned());
        }
        assert_eq!(recorder.livelock(), None, "exactly the limit is allowed");
        recorder.record(Duration::from_millis(1_501), "test", "later".to_owned());
        for _ in 0..EVENTS_PER_INSTANT_LIMIT {
            recorder.record(Duration::from_millis(1_501), "test", "spin".to_owned());
        }
        let livelock = recorder.livelock().expect("one past the limit at one instant");
        assert!(livelock.starts_with("livelock: 100001 events at sim time 1.501000000 s"), "{livelock}");
        assert!(livelock.ends_with("the last: spin"), "{livelock}");
    }
}
