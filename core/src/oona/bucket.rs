//! The emergency stream's token bucket.
//!
//! Emergency traffic (high-priority messages and reroutes from a backed-up normal
//! stream) may not flood the stream the operators watch: the bucket holds
//! `capacity` tokens, refills `per_min` a minute, and starts full. Critical
//! messages do not take tokens; they are never dropped.

use tokio::time::Instant;

/// See the module docs. Time is passed in (tokio time, virtual under the sim).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_ms: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: u32, per_min: u32, now: Instant) -> Self {
        let capacity = f64::from(capacity);
        Self { capacity, refill_per_ms: f64::from(per_min) / 60_000.0, tokens: capacity, refilled_at: now }
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        false
    }

    fn refill(&mut self, now: Instant) {
        let elapsed_ms = now.saturating_duration_since(self.refilled_at).as_secs_f64() * 1_000.0;
        self.tokens = (self.tokens + elapsed_ms * self.refill_per_ms).min(self.capacity);
        self.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn starts_full_empties_and_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, 60, start);
        assert_eq!((0..4).map(|_| bucket.try_take(start)).collect::<Vec<_>>(), [true, true, true, false]);
        assert!(!bucket.try_take(start + Duration::from_millis(999)), "one token a second at 60/min");
        assert!(bucket.try_take(start + Duration::from_millis(1_000)));
        let an_hour_on = start + Duration::from_secs(3_600);
        let takes: Vec<bool> = (0..4).map(|_| bucket.try_take(an_hour_on)).collect();
        assert_eq!(takes, [true, true, true, false], "never above capacity");
    }
}
