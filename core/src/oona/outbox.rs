//! Critical messages held until Redis has surely persisted them.
//!
//! Redis with `appendfsync everysec` acknowledges an XADD before it reaches disk
//! and a crash loses up to the last second of acknowledged writes. Oona promises
//! that a critical message, once `publish` returned, is delivered; so it holds
//! each critical envelope until Redis has answered something at least
//! `durability_window` after the XADD (Redis was alive past its fsync). When a
//! reconnect shows a new `run_id` (Redis restarted), every held message is looked
//! up and the lost ones are published again.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::leyline::BusEnvelope;

/// One critical message not yet known to be durable.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub stream: String,
    pub id: String,
    pub envelope: BusEnvelope,
    pub sent_at: Instant,
}

/// Bounded FIFO of [`Held`] messages, oldest first.
#[derive(Debug)]
pub(super) struct Outbox {
    capacity: usize,
    window: Duration,
    held: VecDeque<Held>,
}

impl Outbox {
    pub fn new(capacity: usize, window: Duration) -> Self {
        assert!(capacity > 0, "the outbox must hold at least one message");
        Self { capacity, window, held: VecDeque::new() }
    }

    /// Forgets messages Redis has surely persisted: those sent at least a window
    /// before Redis last answered.
    pub fn settle(&mut self, last_ok: Option<Instant>) {
        let Some(last_ok) = last_ok else { return };
        while self.held.front().is_some_and(|held| held.sent_at + self.window <= last_ok) {
            self.held.pop_front();
        }
    }

    pub fn is_full(&self) -> bool {
        self.held.len() >= self.capacity
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn push(&mut self, held: Held) {
        assert!(!self.is_full(), "outbox overfilled: callers check is_full first");
        self.held.push_back(held);
    }

    /// Everything held, for re-checking after a Redis restart.
    pub fn take_all(&mut self) -> Vec<Held> {
        self.held.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_only_what_is_a_window_old_when_redis_answered() {
        let start = Instant::now();
        let mut outbox = Outbox::new(2, Duration::from_secs(2));
        let held = |at: u64| Held {
            stream: "s".to_owned(),
            id: format!("{at}-0"),
            envelope: BusEnvelope::default(),
            sent_at: start + Duration::from_secs(at),
        };
        outbox.push(held(0));
        outbox.push(held(1));
        assert!(outbox.is_full());
        outbox.settle(Some(start + Duration::from_millis(2_500)));
        assert_eq!(outbox.len(), 1, "sent at 0 s is durable by 2.5 s; sent at 1 s is not yet");
        outbox.settle(None);
        assert_eq!(outbox.take_all().len(), 1);
    }
}
