//! `reconnect_pacing`: how far apart a client's connect attempts to a Redis that
//! is down are.
//!
//! The drills check that clients get back to Redis, not when they try: a client
//! that retried in a tight loop would pass them all while hammering a Redis that
//! is still starting. Oona waits a capped, doubling, jittered delay between
//! attempts (`backoff`: attempt `n` waits within `[d/2, d]`, `d = min(cap,
//! base · 2ⁿ)`). [`Outage`] refuses every connection at the connector seam and
//! notes when each attempt came, so the gaps can be held to those bounds against
//! the simulated Redis and a real `redis-server` alike.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use esper_core::leyline::{BusMessageType, MessagePriority};
use esper_core::net::Connector;
use esper_core::oona::{OonaError, PublishOutcome, StreamConfig};
use tokio::time::Instant;

use super::{BusFixture, CheckResult, envelope, expect, quick_config};

/// How much later than its bound a wall-clock timer may fire (the real profile
/// on a busy machine); the sim's timers fire exactly on time.
const LATE_SLACK: Duration = Duration::from_millis(100);

/// A [`Connector`] that refuses connections while Redis is "down", and notes the
/// instant of every connect attempt.
#[derive(Debug, Clone)]
struct Outage<C> {
    inner: C,
    state: Arc<Mutex<OutageState>>,
}

#[derive(Debug, Default)]
struct OutageState {
    down: bool,
    attempts: Vec<Instant>,
}

impl<C> Outage<C> {
    fn new(inner: C) -> Self {
        Self { inner, state: Arc::default() }
    }

    fn set_down(&self, down: bool) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).down = down;
    }

    /// Every connect attempt so far, in order.
    fn attempts(&self) -> Vec<Instant> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).attempts.clone()
    }
}

impl<C: Connector> Connector for Outage<C> {
    type Stream = C::Stream;
    type Listener = C::Listener;

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::Stream> {
        let down = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.attempts.push(Instant::now());
            state.down
        };
        if down {
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "reconnect_pacing: Redis is down"));
        }
        self.inner.connect(host, port).await
    }

    fn bind(&self, port: u16) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        self.inner.bind(port)
    }
}

/// The longest wait a capped doubling backoff allows before attempt `attempt + 1`
/// (`min(cap, base · 2^attempt)`), worked out here rather than asked of
/// [`esper_core::oona::Backoff`], so that a bug there cannot move the bound it is
/// judged by.
pub(crate) fn backoff_ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    (0..attempt).fold(base, |delay, _| (delay * 2).min(cap)).min(cap)
}

/// Six refused attempts, each gap within its backoff bounds, then the bus
/// unavailable; once Redis is back, the next call waits out the last delay and
/// publishes.
pub(super) async fn reconnect_pacing<C: Connector>(fixture: &BusFixture<C>) -> CheckResult {
    let outage = Outage::new(fixture.connector.clone());
    let paced = fixture.through(outage.clone());
    let config = StreamConfig {
        reconnect_base: Duration::from_millis(40),
        reconnect_cap: Duration::from_millis(160),
        reconnect_attempts: 6,
        ..quick_config()
    };
    let (base, cap) = (config.reconnect_base, config.reconnect_cap);
    let mut client = paced.client(config)?;
    let plain = |seq| envelope(seq, BusMessageType::SystemState, MessagePriority::Normal);

    outage.set_down(true);
    match client.publish(&plain(0)).await {
        Err(OonaError::Unavailable { attempts: 6, .. }) => {}
        other => {
            return Err(format!("publish to a Redis that is down: {other:?}, wanted Unavailable after 6 attempts"));
        }
    }
    outage.set_down(false);
    let outcome = client.publish(&plain(1)).await.map_err(|error| format!("publish once Redis is back: {error}"))?;
    expect("publish once Redis is back", matches!(outcome, PublishOutcome::Published { .. }), true)?;

    let attempts = outage.attempts();
    expect("connect attempts (six refused, one accepted)", attempts.len(), 7)?;
    for (failures, pair) in (0_u32..).zip(attempts.windows(2)) {
        let gap = pair[1] - pair[0];
        let ceiling = backoff_ceiling(base, cap, failures);
        if gap < ceiling / 2 || gap > ceiling + LATE_SLACK {
            return Err(format!(
                "connect attempt {} came {gap:?} after the one before; after {failures} failures the wait is \
                 within [{:?}, {ceiling:?}]",
                failures + 2,
                ceiling / 2
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracles_ceiling_doubles_up_to_its_cap() {
        let (base, cap) = (Duration::from_millis(40), Duration::from_millis(160));
        let ceilings: Vec<u128> = (0..6).map(|attempt| backoff_ceiling(base, cap, attempt).as_millis()).collect();
        assert_eq!(ceilings, [40, 80, 160, 160, 160, 160]);
        assert_eq!(backoff_ceiling(Duration::from_millis(250), Duration::from_millis(300), 0).as_millis(), 250);
    }
}
