//! The Tamiyo RPC client: Tolaria's `TamiyoPort` when Tamiyo runs on another host.
//!
//! The client keeps one connection and opens it lazily. The stream is taken out of
//! the client for the length of an exchange and put back only when a whole answer
//! was read, so a call that Tolaria abandons at its step timeout (dropping the
//! future) also drops the connection: a late answer can never be mistaken for the
//! next call's. A call that finds a kept connection broken (the server restarted, a
//! partition healed) retries once on a fresh one; the request is signed afresh, so
//! the server may see it twice — commands are at-least-once, as on Oona.

use rand::RngCore;

use crate::leyline::{AdaptationCommand, SystemStatePacket, Verifier};
use crate::net::Connector;
use crate::net::framed::{read_frame, write_frame};
use crate::planted::PlantedBug;
use crate::tolaria::ports::{PortError, TamiyoPort};

use super::super::service::UnixMillis;
use super::{REFUSAL_ATTRIBUTE, RpcConfig, RpcError, seal};

/// Client-side counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    pub requests: u64,
    pub connects: u64,
    /// Calls retried on a fresh connection after the kept one broke.
    pub retries: u64,
    pub refused: u64,
    pub failures: u64,
}

/// See the module docs.
pub struct TamiyoClient<C: Connector> {
    connector: C,
    host: String,
    port: u16,
    config: RpcConfig,
    verifier: Verifier,
    clock: Box<dyn UnixMillis + Send>,
    rng: Box<dyn RngCore + Send>,
    connection: Option<C::Stream>,
    counters: ClientCounters,
    /// Set by a failed dial under the planted `livelock-after-repair` bug.
    dial_failed: bool,
}

impl<C: Connector> std::fmt::Debug for TamiyoClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TamiyoClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("connected", &self.connection.is_some())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<C: Connector> TamiyoClient<C> {
    /// A client of the Tamiyo server at `host:port`, stamping frames from `clock`
    /// and drawing nonces from `rng` (seeded). Connects on the first call.
    pub fn new(
        connector: C,
        host: impl Into<String>,
        port: u16,
        config: RpcConfig,
        clock: impl UnixMillis + Send + 'static,
        rng: impl RngCore + Send + 'static,
    ) -> Self {
        let verifier = Verifier::new(config.key.clone(), config.verify);
        Self {
            connector,
            host: host.into(),
            port,
            config,
            verifier,
            clock: Box::new(clock),
            rng: Box::new(rng),
            connection: None,
            counters: ClientCounters::default(),
            dial_failed: false,
        }
    }

    /// Asks Tamiyo to decide on `packet`.
    pub async fn request(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, RpcError> {
        self.counters.requests += 1;
        let kept = self.connection.is_some();
        let result = match self.exchange(packet).await {
            Err(error) if kept && error.is_broken_connection() => {
                tracing::debug!(%error, "tamiyo.rpc.retry_on_fresh_connection");
                self.counters.retries += 1;
                self.exchange(packet).await
            }
            other => other,
        };
        match &result {
            Err(RpcError::Refused(_)) if self.config.planted.armed(PlantedBug::PanicOnRarePath) => {
                // The planted bug: it takes a refusal, a whole signed answer, to
                // have kept the connection — but `exchange` keeps only a
                // connection that delivered a command.
                let Some(_kept) = self.connection.as_ref() else {
                    unreachable!("a refused Tamiyo request keeps its connection")
                };
                self.counters.refused += 1;
            }
            Err(RpcError::Refused(_)) => self.counters.refused += 1,
            Err(_) => self.counters.failures += 1,
            Ok(_) => {}
        }
        result
    }

    /// One request and its answer on the kept connection, or a new one.
    async fn exchange(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, RpcError> {
        let frame = seal(&self.config.key, packet, self.clock.now_ms(), &mut *self.rng);
        let mut stream = match self.connection.take() {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        let max = self.config.max_frame_bytes;
        write_frame(&mut stream, &frame, max).await?;
        let answer = read_frame(&mut stream, max).await?.ok_or(RpcError::Closed)?;
        let command = self.open_answer(&answer)?;
        // Only a connection that delivered a whole, valid answer is kept.
        self.connection = Some(stream);
        Ok(command)
    }

    async fn connect(&mut self) -> Result<C::Stream, RpcError> {
        self.counters.connects += 1;
        let connected = if self.dial_failed {
            // The planted `livelock-after-repair` bug: after one failed dial the
            // client stops dialling — a breaker that opens and never half-opens —
            // so it stays cut off once the link heals.
            Err(std::io::Error::new(std::io::ErrorKind::NotConnected, "not redialling after a failed dial"))
        } else {
            self.connector.connect(&self.host, self.port).await
        };
        self.dial_failed = connected.is_err() && self.config.planted.armed(PlantedBug::LivelockAfterRepair);
        connected.map_err(|source| RpcError::Connect { host: self.host.clone(), port: self.port, source })
    }

    fn open_answer(&mut self, frame: &[u8]) -> Result<AdaptationCommand, RpcError> {
        let envelope = self.verifier.verify(frame, self.clock.now_ms())?;
        if let Some(reason) = envelope.attributes.get(REFUSAL_ATTRIBUTE) {
            return Err(RpcError::Refused(reason.clone()));
        }
        Ok(envelope.open::<AdaptationCommand>()?)
    }

    /// Counts so far.
    pub fn counters(&self) -> ClientCounters {
        self.counters
    }

    /// Verification counts of the server's answers.
    pub fn verify_counters(&self) -> crate::leyline::VerifyCounters {
        self.verifier.counters()
    }
}

impl<C: Connector> TamiyoPort for TamiyoClient<C> {
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError> {
        self.request(packet).await.map_err(|error| match error {
            RpcError::Refused(reason) => PortError::Refused { service: "tamiyo", reason },
            other => PortError::Unavailable { service: "tamiyo", reason: other.to_string() },
        })
    }
}
