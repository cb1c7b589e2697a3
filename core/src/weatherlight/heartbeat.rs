//! Heartbeats: Weatherlight's liveness probe.
//!
//! A subsystem runs [`serve_heartbeats`], which echoes every 8-byte beat it receives.
//! Weatherlight runs a [`HeartbeatMonitor`] per subsystem: it sends a numbered beat
//! every `interval_ms` (plus seeded jitter, so probes of many subsystems do not march
//! in lockstep), waits at most `timeout_ms` for the echo and records each beat as
//! acknowledged or missed. A miss drops the connection; the next beat reconnects.
//! That is deliberately simple — no pipelining, no stale replies to reconcile — so a
//! missed beat always means "this subsystem was unreachable within the deadline".

use std::io;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep, timeout};

use crate::net::{Connector, Listener};

/// How a monitor probes one subsystem. Every field is a bound: the monitor sends
/// exactly `beats` beats and never waits longer than `timeout_ms` for anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Port the subsystem's heartbeat responder listens on.
    pub port: u16,
    /// Nominal gap between beats.
    pub interval_ms: u64,
    /// Upper bound of the uniform extra delay added to each gap.
    pub jitter_ms: u64,
    /// Deadline for connecting and for each echo.
    pub timeout_ms: u64,
    /// How many beats to send before the monitor returns.
    pub beats: u32,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self { port: 7070, interval_ms: 100, jitter_ms: 20, timeout_ms: 50, beats: 40 }
    }
}

/// Why a beat went unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// No connection could be opened within the deadline.
    ConnectTimeout,
    /// Connecting failed outright (refused, unreachable).
    ConnectFailed,
    /// The echo did not arrive within the deadline.
    EchoTimeout,
    /// The connection broke while sending or receiving.
    Broken,
    /// The echo carried a different sequence number.
    WrongEcho,
}

impl MissReason {
    /// Stable snake_case name, used in trace events and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectTimeout => "connect_timeout",
            Self::ConnectFailed => "connect_failed",
            Self::EchoTimeout => "echo_timeout",
            Self::Broken => "broken",
            Self::WrongEcho => "wrong_echo",
        }
    }
}

/// What became of one beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatResult {
    /// Echoed after `rtt_us` microseconds.
    Acked { rtt_us: u64 },
    /// Not echoed in time.
    Missed(MissReason),
}

/// One beat as the monitor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// Sequence number, from 0.
    pub seq: u64,
    /// When the beat was sent, measured from the monitor's start.
    pub sent_at: Duration,
    /// Its fate.
    pub result: BeatResult,
}

/// Every beat a monitor sent, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatLog {
    /// One entry per beat sent; its length is the configured `beats`.
    pub beats: Vec<Beat>,
    /// Connections opened (the first one included).
    pub connects: u32,
}

impl HeartbeatLog {
    /// Number of acknowledged beats.
    pub fn acked(&self) -> usize {
        self.beats.iter().filter(|beat| matches!(beat.result, BeatResult::Acked { .. })).count()
    }

    /// Number of missed beats.
    pub fn missed(&self) -> usize {
        self.beats.len() - self.acked()
    }
}

/// Echoes heartbeats on `port` until the listener fails. Each connection is served
/// by its own task, so one stuck peer cannot starve the others.
pub async fn serve_heartbeats<C: Connector>(connector: C, port: u16) -> io::Result<()> {
    let mut listener = connector.bind(port).await?;
    loop {
        let (stream, peer) = listener.accept().await?;
        tracing::debug!(peer = peer.as_str(), "heartbeat connection accepted");
        tokio::spawn(echo_beats(stream));
    }
}

/// Echoes 8-byte beats until the peer goes away. Errors end only this connection.
async fn echo_beats<S: crate::net::Stream>(mut stream: S) {
    let mut frame = [0_u8; 8];
    while stream.read_exact(&mut frame).await.is_ok() {
        if stream.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Probes one subsystem with numbered beats; see the module docs.
#[derive(Debug)]
pub struct HeartbeatMonitor<C: Connector, R: Rng> {
    connector: C,
    target: String,
    config: HeartbeatConfig,
    rng: R,
}

impl<C: Connector, R: Rng> HeartbeatMonitor<C, R> {
    /// A monitor of `target` (a host name), drawing its jitter from `rng`.
    pub fn new(connector: C, target: impl Into<String>, config: HeartbeatConfig, rng: R) -> Self {
        assert!(config.timeout_ms > 0, "a zero heartbeat timeout would miss every beat");
        Self { connector, target: target.into(), config, rng }
    }

    /// Sends all beats and returns what became of each.
    pub async fn run(mut self) -> HeartbeatLog {
        let started = Instant::now();
        let mut log = HeartbeatLog::default();
        let mut connection: Option<C::Stream> = None;
        for seq in 0..u64::from(self.config.beats) {
            let gap_ms = self.config.interval_ms + self.rng.random_range(0..=self.config.jitter_ms);
            sleep(Duration::from_millis(gap_ms)).await;
            let sent_at = started.elapsed();
            let result = self.beat(seq, &mut connection, &mut log.connects).await;
            record(seq, result);
            log.beats.push(Beat { seq, sent_at, result });
        }
        debug_assert_eq!(log.beats.len(), self.config.beats as usize);
        log
    }

    /// One beat: connect if needed, send, wait for the echo. Any miss drops the
    /// connection so the next beat starts from a clean one.
    async fn beat(&self, seq: u64, connection: &mut Option<C::Stream>, connects: &mut u32) -> BeatResult {
        let deadline = Duration::from_millis(self.config.timeout_ms);
        let stream = match connection {
            Some(stream) => stream,
            None => match timeout(deadline, self.connector.connect(&self.target, self.config.port)).await {
                Err(_) => return BeatResult::Missed(MissReason::ConnectTimeout),
                Ok(Err(_)) => return BeatResult::Missed(MissReason::ConnectFailed),
                Ok(Ok(stream)) => {
                    *connects += 1;
                    connection.insert(stream)
                }
            },
        };
        let result = exchange(stream, seq, deadline).await;
        if matches!(result, BeatResult::Missed(_)) {
            *connection = None;
        }
        result
    }
}

/// Sends beat `seq` and waits for its echo, all within `deadline`.
async fn exchange<S: crate::net::Stream>(stream: &mut S, seq: u64, deadline: Duration) -> BeatResult {
    let sent = Instant::now();
    let round_trip = async {
        stream.write_all(&seq.to_le_bytes()).await?;
        let mut echo = [0_u8; 8];
        stream.read_exact(&mut echo).await?;
        Ok::<u64, io::Error>(u64::from_le_bytes(echo))
    };
    match timeout(deadline, round_trip).await {
        Err(_) => BeatResult::Missed(MissReason::EchoTimeout),
        Ok(Err(_)) => BeatResult::Missed(MissReason::Broken),
        Ok(Ok(echo)) if echo != seq => BeatResult::Missed(MissReason::WrongEcho),
        Ok(Ok(_)) => {
            let rtt_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            BeatResult::Acked { rtt_us }
        }
    }
}

/// Emits the trace event for one beat.
fn record(seq: u64, result: BeatResult) {
    match result {
        BeatResult::Acked { rtt_us } => tracing::info!(seq, rtt_us, "heartbeat acknowledged"),
        BeatResult::Missed(reason) => tracing::warn!(seq, reason = reason.as_str(), "heartbeat missed"),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::net::TokioConnector;

    /// The monitor and responder speak to each other over real loopback TCP.
    #[tokio::test]
    async fn acknowledges_every_beat_over_real_tcp() {
        let connector = TokioConnector;
        let mut listener = connector.bind(0).await.expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(echo_beats(stream));
            }
        });
        let config = HeartbeatConfig { port, interval_ms: 1, jitter_ms: 1, timeout_ms: 5_000, beats: 5 };
        let log = HeartbeatMonitor::new(connector, "127.0.0.1", config, ChaCha8Rng::seed_from_u64(1)).run().await;
        assert_eq!(log.acked(), 5);
        assert_eq!(log.connects, 1);
        assert_eq!(log.beats.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    }

    /// Nobody listening: every beat is a connect failure, and the log still has them all.
    #[tokio::test]
    async fn records_a_miss_for_every_beat_when_nobody_listens() {
        let connector = TokioConnector;
        let port = connector.bind(0).await.expect("bind").local_addr().expect("addr").port();
        // The listener above is dropped, so the port is closed now.
        let config = HeartbeatConfig { port, interval_ms: 1, jitter_ms: 0, timeout_ms: 1_000, beats: 3 };
        let log = HeartbeatMonitor::new(connector, "127.0.0.1", config, ChaCha8Rng::seed_from_u64(1)).run().await;
        assert_eq!(log.missed(), 3);
        assert_eq!(log.connects, 0);
    }
}
