//! Unix time read from tokio's clock.
//!
//! Leyline timestamps are Unix milliseconds, but `esper-core` may not read the system
//! clock (the sim would stop being deterministic). A [`UnixClock`] is anchored once —
//! by the CLI from the real clock in the real profile, by the world at its fixed epoch
//! in the sim — and then advances with `tokio::time`, which is virtual under the sim.

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, advancing with tokio time.
#[derive(Debug, Clone, Copy)]
pub struct UnixClock {
    origin: Instant,
    origin_unix_ms: u64,
}

impl UnixClock {
    /// A clock that reads `unix_ms` now. Must be called inside a tokio runtime.
    pub fn anchored_at(unix_ms: u64) -> Self {
        Self { origin: Instant::now(), origin_unix_ms: unix_ms }
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_unix_ms.saturating_add(elapsed)
    }

    /// Unix nanoseconds now (for `SystemStatePacket.timestamp_ns`).
    pub fn now_ns(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.origin_unix_ms.saturating_mul(1_000_000).saturating_add(elapsed)
    }
}
