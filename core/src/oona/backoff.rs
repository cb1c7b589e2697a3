//! Capped exponential backoff with jitter, for reconnecting to Redis.
//!
//! Attempt `n` (from 0) waits a uniformly drawn time in `[d/2, d]` where
//! `d = min(cap, base · 2ⁿ)`: the doubling stops a flapping Redis from being
//! hammered, the cap bounds how long a recovered Redis waits for its clients, and
//! the jitter (from the caller's seeded RNG, so runs replay) keeps clients that
//! lost Redis together from reconnecting in lockstep.
//!
//! Weatherlight restarts crashed services on the same doubling, but with Esper-Lite's
//! supervisor jitter: [`Backoff::delay_above`] waits `d + U(0, d/4)`, never less than
//! the ceiling, so a restart storm is spread out without shortening any wait.

use std::time::Duration;

use rand::{Rng, RngCore};

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// A backoff from `base` doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        assert!(!base.is_zero() && base <= cap, "backoff needs 0 < base <= cap, got {base:?} and {cap:?}");
        Self { base, cap }
    }

    /// The ceiling of attempt `attempt`'s delay.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1_u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Attempt `attempt`'s delay, jittered into `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: u32, rng: &mut impl RngCore) -> Duration {
        let ceiling = self.ceiling(attempt);
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.random_range(ceiling_us / 2..=ceiling_us))
    }

    /// Attempt `attempt`'s delay, jittered into `[ceiling, 1.25 · ceiling]`.
    pub fn delay_above(&self, attempt: u32, rng: &mut impl RngCore) -> Duration {
        let ceiling_us = u64::try_from(self.ceiling(attempt).as_micros()).unwrap_or(u64::MAX);
        let extra_us = rng.random_range(0..=ceiling_us / 4);
        Duration::from_micros(ceiling_us.saturating_add(extra_us))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_inside_half_to_full() {
        let backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        let ceilings: Vec<u128> = (0..10).map(|attempt| backoff.ceiling(attempt).as_millis()).collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(5));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(3, &mut rng)).collect();
        assert!(delays.iter().all(|delay| (Duration::from_millis(200)..=Duration::from_millis(400)).contains(delay)));
        assert!(delays.iter().any(|delay| *delay != delays[0]), "jitter varies the delay");
        let mut again = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(backoff.delay(3, &mut again), delays[0], "the same seed gives the same delays");
        let above: Vec<Duration> = (0..200).map(|_| backoff.delay_above(3, &mut rng)).collect();
        assert!(above.iter().all(|delay| (Duration::from_millis(400)..=Duration::from_millis(500)).contains(delay)));
        assert!(above.iter().any(|delay| *delay != above[0]), "jitter varies the delay");
    }
}
