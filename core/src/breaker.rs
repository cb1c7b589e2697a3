//! The circuit breaker Esper-Lite puts in front of every fallible dependency
//! (Tolaria's epochs, Tamiyo's inference and metadata lookups, Oona's publish and
//! consume paths).
//!
//! Closed: calls go through; `failure_threshold` consecutive failures open it.
//! Open: calls are refused until `open_ms` has passed, then it is half-open.
//! Half-open: calls go through; `success_threshold` successes close it, one failure
//! opens it again. Time is passed in by the caller (tokio's `Instant`), so the
//! breaker is virtual-time in the sim and testable without a runtime.
//!
//! Every transition is logged (`breaker.transition`, with the breaker's name:
//! open at WARN, half-open and closed at INFO), so a real run shows when a
//! dependency was cut off and when it was tried again.

use std::time::Duration;

use tokio::time::Instant;

/// Thresholds and timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// Successes in half-open that close it.
    pub success_threshold: u32,
    /// How long an open breaker refuses calls.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    /// Esper-Lite's defaults: 3 failures, 1 success, 30 s open.
    fn default() -> Self {
        Self { failure_threshold: 3, success_threshold: 1, open_ms: 30_000 }
    }
}

/// Where the breaker is. Numbered as Leyline's `CircuitBreakerState` (1–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed = 1,
    /// Calls are refused.
    Open = 2,
    /// Trial calls go through.
    HalfOpen = 3,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    /// What it guards, in the transition logs (`breaker` unless [`Self::named`]).
    name: &'static str,
    config: BreakerConfig,
    state: BreakerState,
    open_until: Option<Instant>,
    consecutive_failures: u32,
    half_open_successes: u32,
    opened_total: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        assert!(config.failure_threshold > 0 && config.success_threshold > 0, "breaker thresholds must be positive");
        Self {
            name: "breaker",
            config,
            state: BreakerState::Closed,
            open_until: None,
            consecutive_failures: 0,
            half_open_successes: 0,
            opened_total: 0,
        }
    }

    /// The same breaker, logged as `name` (e.g. `tolaria.epoch`).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Whether a call may go through now; moves open → half-open when the time is up.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.state == BreakerState::Open && self.open_until.is_some_and(|until| now >= until) {
            self.move_to(BreakerState::HalfOpen);
            self.open_until = None;
            self.half_open_successes = 0;
        }
        self.state != BreakerState::Open
    }

    /// Records a call that succeeded.
    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        if self.state == BreakerState::HalfOpen {
            self.half_open_successes += 1;
            if self.half_open_successes >= self.config.success_threshold {
                self.move_to(BreakerState::Closed);
            }
        }
    }

    /// The one place the state changes, logged.
    fn move_to(&mut self, to: BreakerState) {
        let (name, from, failures) = (self.name, self.state, self.consecutive_failures);
        debug_assert_ne!(from, to, "a transition changes the state");
        self.state = to;
        if to == BreakerState::Open {
            tracing::warn!(breaker = name, ?from, failures, open_ms = self.config.open_ms, "breaker.transition.open");
        } else {
            tracing::info!(breaker = name, ?from, ?to, "breaker.transition");
        }
    }

    /// Records a call that failed at `now`.
    pub fn record_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let trips = self.state == BreakerState::HalfOpen || self.consecutive_failures >= self.config.failure_threshold;
        if trips && self.state != BreakerState::Open {
            self.move_to(BreakerState::Open);
            self.open_until = Some(now + Duration::from_millis(self.config.open_ms));
            self.opened_total += 1;
        }
    }

    /// The current state (without advancing time; see [`Self::allow`]).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// How many times the breaker has opened.
    pub fn opened_total(&self) -> u64 {
        self.opened_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_half_opens_after_timeout_and_closes_on_success() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerConfig::default());
        breaker.record_failure(start);
        breaker.record_failure(start);
        assert!(breaker.allow(start), "two failures keep it closed");
        breaker.record_failure(start);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow(start + Duration::from_millis(29_999)));
        assert!(breaker.allow(start + Duration::from_millis(30_000)));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.opened_total(), 1);
    }

    #[test]
    fn a_failure_while_half_open_reopens_and_success_resets_the_count() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerConfig { open_ms: 10, ..BreakerConfig::default() });
        breaker.record_failure(start);
        breaker.record_failure(start);
        breaker.record_success();
        breaker.record_failure(start);
        assert_eq!(breaker.state(), BreakerState::Closed, "success reset the consecutive count");
        for _ in 0..2 {
            breaker.record_failure(start);
        }
        assert!(breaker.allow(start + Duration::from_millis(10)));
        breaker.record_failure(start + Duration::from_millis(10));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.opened_total(), 2);
    }
}
