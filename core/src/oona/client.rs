//! `OonaClient`: one connection's worth of publishing and consuming.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::RngCore;
use redis::{Cmd, Value};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::bucket::TokenBucket;
use super::config::StreamConfig;
use super::error::OonaError;
use super::link::{Link, Target};
use super::metrics::OonaMetrics;
use super::outbox::{Held, Outbox};
use crate::clock::UnixClock;
use crate::leyline::signing::{SigningKey, sign};
use crate::leyline::{BusEnvelope, Verifier, VerifyCounters, VerifyPolicy};
use crate::net::Connector;

/// The stream field holding a signed Leyline frame.
pub const FRAME_FIELD: &str = "frame";

/// Publishes signed envelopes to, and consumes them from, Redis Streams.
///
/// Generic over the [`Connector`] (tokio or turmoil TCP) and the RNG (a seeded
/// ChaCha8 stream in the sim) that draws nonces and reconnect jitter.
#[derive(Debug)]
pub struct OonaClient<C: Connector, R: RngCore> {
    pub(super) config: StreamConfig,
    pub(super) link: Link<C>,
    pub(super) rng: R,
    pub(super) key: SigningKey,
    pub(super) verifier: Verifier,
    pub(super) clock: UnixClock,
    pub(super) bucket: TokenBucket,
    pub(super) outbox: Outbox,
    pub(super) verified: VerifiedCache,
    pub(super) metrics: OonaMetrics,
    /// When each stream was last swept with XAUTOCLAIM (see `claim_interval`).
    pub(super) last_claim: BTreeMap<String, Instant>,
}

impl<C: Connector, R: RngCore> OonaClient<C, R> {
    /// A client for Redis at `host:port`; connects on first use. Call inside a
    /// tokio runtime (the emergency bucket starts at tokio's now).
    pub fn new(connector: C, host: &str, port: u16, config: StreamConfig, parts: ClientParts<R>) -> Self {
        let backoff = Backoff::new(config.reconnect_base, config.reconnect_cap);
        let link = Link::new(connector, host, port, backoff, config.reconnect_attempts, config.command_timeout);
        let bucket = TokenBucket::new(config.emergency_burst, config.emergency_max_per_min, Instant::now());
        Self {
            link,
            bucket,
            outbox: Outbox::new(config.outbox_capacity, config.durability_window),
            verified: VerifiedCache::new(config.verified_cache),
            verifier: Verifier::new(parts.key.clone(), parts.verify),
            key: parts.key,
            clock: parts.clock,
            rng: parts.rng,
            metrics: OonaMetrics::default(),
            last_claim: BTreeMap::new(),
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Changes how long XREADGROUP waits for new entries (zero: not at all). A
    /// consumer of several streams reads them in turn; it does not wait while any
    /// of them is busy, and waits the full block only when all were idle.
    pub fn set_block(&mut self, block: Duration) {
        self.config.block = block;
    }

    /// Every counter now.
    pub fn metrics_snapshot(&self) -> OonaMetrics {
        OonaMetrics { reconnects: self.link.reconnects, server_restarts: self.link.server_restarts, ..self.metrics }
    }

    /// The consumer's verifier: which check refused how many frames, and how many
    /// it accepted.
    pub fn verify_counters(&self) -> VerifyCounters {
        self.verifier.counters()
    }

    /// Critical messages not yet known to be durable.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// One housekeeping step for the critical outbox: asks Redis for a `PING`
    /// (which notices a restart and republishes what it lost) and forgets
    /// messages that are now durable. Returns how many are still held; call it
    /// periodically, and until it returns 0 before a publisher exits.
    pub async fn sync_outbox(&mut self) -> Result<usize, OonaError> {
        self.query(&redis::cmd("PING"), Target { command: "PING", stream: "" }, Duration::ZERO).await?;
        self.outbox.settle(self.link.last_ok());
        Ok(self.outbox.len())
    }

    /// Runs one command against Redis.
    pub(super) async fn query(&mut self, cmd: &Cmd, target: Target<'_>, extra: Duration) -> Result<Value, OonaError> {
        let value = self.link.query(cmd, target, extra, &mut self.rng).await;
        if self.link.take_restart() {
            self.recover_outbox().await?;
        }
        value
    }

    /// Signs `envelope` now with a fresh nonce.
    pub(super) fn frame(&mut self, envelope: &BusEnvelope) -> Vec<u8> {
        sign(&self.key, envelope, self.clock.now_ms(), &mut self.rng)
    }

    /// `XADD stream [MAXLEN ~ n] * frame <signed envelope>`; the new id.
    pub(super) async fn xadd(&mut self, stream: &str, envelope: &BusEnvelope) -> Result<String, OonaError> {
        let frame = self.frame(envelope);
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream);
        if let Some(max_len) = self.config.max_stream_length.filter(|_| stream == self.config.normal_stream) {
            cmd.arg("MAXLEN").arg("~").arg(max_len);
        }
        cmd.arg("*").arg(FRAME_FIELD).arg(frame);
        let target = Target { command: "XADD", stream };
        let reply = self.query(&cmd, target, Duration::ZERO).await?;
        super::entries::text(&reply).map_err(|detail| reply_error(target, detail))
    }

    /// `XLEN stream`.
    pub(super) async fn xlen(&mut self, stream: &str) -> Result<u64, OonaError> {
        let target = Target { command: "XLEN", stream };
        match self.query(redis::cmd("XLEN").arg(stream), target, Duration::ZERO).await? {
            Value::Int(len) => Ok(u64::try_from(len).unwrap_or(0)),
            other => Err(reply_error(target, format!("expected an integer, got {other:?}"))),
        }
    }

    /// After a Redis restart: republishes held critical messages the restart
    /// lost. If Redis fails again midway, what is left stays held and the check
    /// runs again on the next call.
    async fn recover_outbox(&mut self) -> Result<(), OonaError> {
        let mut pending: VecDeque<Held> = self.outbox.take_all().into();
        tracing::warn!(held = pending.len(), "oona: Redis restarted; checking critical messages it may have lost");
        while let Some(message) = pending.pop_front() {
            match self.recheck(message).await {
                Ok(kept) => kept.into_iter().for_each(|held| self.outbox.push(held)),
                Err((message, error)) => {
                    std::iter::once(message).chain(pending).for_each(|held| self.outbox.push(held));
                    self.link.flag_restart();
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Looks `message` up; publishes it again when it is gone. Returns it (with
    /// its new id) when it must stay held.
    async fn recheck(&mut self, mut message: Held) -> Result<Option<Held>, (Held, OonaError)> {
        let stream = message.stream.clone();
        let lookup = redis::cmd("XRANGE").arg(&stream).arg(&message.id).arg(&message.id).clone();
        let target = Target { command: "XRANGE", stream: &stream };
        let found = match self.link.query(&lookup, target, Duration::ZERO, &mut self.rng).await {
            Ok(found) => found,
            Err(error) => return Err((message, error)),
        };
        if matches!(&found, Value::Array(items) if !items.is_empty()) {
            return Ok(None);
        }
        let frame = self.frame(&message.envelope);
        let add = redis::cmd("XADD").arg(&stream).arg("*").arg(FRAME_FIELD).arg(frame).clone();
        let target = Target { command: "XADD", stream: &stream };
        let id = match self.link.query(&add, target, Duration::ZERO, &mut self.rng).await {
            Ok(reply) => super::entries::text(&reply).map_err(|detail| reply_error(target, detail)),
            Err(error) => Err(error),
        };
        match id {
            Ok(id) => {
                tracing::warn!(stream = %stream, id = %id, "oona: republished a critical message lost by a Redis restart");
                self.metrics.republished += 1;
                message.id = id;
                message.sent_at = Instant::now();
                Ok(Some(message))
            }
            Err(error) => Err((message, error)),
        }
    }
}

/// What a client needs besides its address and config.
#[derive(Debug)]
pub struct ClientParts<R> {
    /// The shared Leyline secret.
    pub key: SigningKey,
    /// How strictly consumed frames are checked.
    pub verify: VerifyPolicy,
    /// Unix time for frame timestamps.
    pub clock: UnixClock,
    /// Nonces and reconnect jitter.
    pub rng: R,
}

pub(super) fn reply_error(target: Target<'_>, detail: String) -> OonaError {
    OonaError::Reply { command: target.command, stream: target.stream.to_owned(), detail }
}

/// Entries already verified, so a redelivery (a failed handler, an ack lost in a
/// Redis crash) is not refused as a replay of its own nonce. Bounded, oldest out.
#[derive(Debug)]
pub(super) struct VerifiedCache {
    capacity: usize,
    order: VecDeque<String>,
    envelopes: BTreeMap<String, BusEnvelope>,
}

impl VerifiedCache {
    fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), order: VecDeque::new(), envelopes: BTreeMap::new() }
    }

    pub fn get(&self, key: &str) -> Option<&BusEnvelope> {
        self.envelopes.get(key)
    }

    pub fn insert(&mut self, key: String, envelope: BusEnvelope) {
        if self.envelopes.insert(key.clone(), envelope).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.envelopes.remove(&oldest);
            }
        }
    }
}
