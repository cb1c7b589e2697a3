//! Tamiyo over TCP: Tolaria's `TamiyoPort` across the (simulated) network.
//!
//! One request, one answer, on a long-lived connection through the [`Connector`]
//! seam. Each message is a signed Leyline frame (HMAC, timestamp, nonce; see
//! `leyline::signing`) inside a length-prefixed frame (`net::framed`): a
//! `SystemStatePacket` envelope in, an `AdaptationCommand` envelope out. Both sides
//! run a [`Verifier`], so a forged, stale or replayed frame is refused in either
//! direction.
//!
//! A request the server cannot accept (bad MAC, stale, replayed, wrong message type,
//! malformed) is counted and answered with a signed refusal, then the connection is
//! closed; a frame it cannot even delimit (oversized, cut short) is counted and the
//! connection closed without an answer. Nothing a peer sends can panic the server.
//!
//! [`Connector`]: crate::net::Connector
//! [`Verifier`]: crate::leyline::Verifier

mod client;
mod server;

use std::sync::{Arc, Mutex, PoisonError};

use rand::RngCore;

use crate::leyline::signing::sign;
use crate::leyline::{
    AdaptationCommand, BusEnvelope, Contract, DecodeError, MessagePriority, SigningKey, VerifyCounters, VerifyError,
    VerifyPolicy,
};
use crate::net::framed::{DEFAULT_MAX_FRAME_BYTES, FramedError};
use crate::planted::Planted;

pub use client::{ClientCounters, TamiyoClient};
pub use server::serve_tamiyo;

/// Envelope attribute carrying the server's reason for refusing a request.
pub const REFUSAL_ATTRIBUTE: &str = "tamiyo.refused";

/// Both sides' settings.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// The shared Leyline secret (`ESPER_LEYLINE_SECRET`).
    pub key: SigningKey,
    /// Freshness, skew and replay rules for incoming frames.
    pub verify: VerifyPolicy,
    /// Largest frame either side sends or accepts.
    pub max_frame_bytes: u32,
    /// Connections the server serves at once. At the cap a new connection evicts
    /// the one idle longest (counted); it is refused only when none is idle.
    pub max_connections: usize,
    /// How long a connection may take to deliver its next whole frame (idle time
    /// included) before the server closes it (counted): a silent or byte-a-second
    /// peer cannot hold a slot. Tolaria sends every step, and its client redials
    /// a closed connection once.
    pub read_timeout: std::time::Duration,
    /// The planted bug a drill arms (test builds only; see [`crate::planted`]).
    pub planted: Planted,
}

impl RpcConfig {
    /// Defaults around `key`: Leyline's verify policy, 1 MiB frames, 16 connections,
    /// a 120 s read timeout.
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            verify: VerifyPolicy::default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: 16,
            read_timeout: std::time::Duration::from_secs(120),
            planted: Planted::NONE,
        }
    }
}

/// Why an RPC did not produce a command.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("connecting to Tamiyo at {host}:{port} failed: {source}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("Tamiyo connection: {0}")]
    Framed(#[from] FramedError),
    #[error("Tamiyo closed the connection before answering")]
    Closed,
    #[error("frame refused: {0}")]
    Verify(#[from] VerifyError),
    #[error("envelope refused: {0}")]
    Decode(#[from] DecodeError),
    #[error("Tamiyo refused the request: {0}")]
    Refused(String),
}

impl RpcError {
    /// Whether the connection itself broke (worth one retry on a fresh connection).
    fn is_broken_connection(&self) -> bool {
        matches!(self, Self::Closed | Self::Framed(FramedError::Io(_) | FramedError::ShortPrefix { .. }))
    }
}

/// Server-side counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcCounters {
    pub connections_accepted: u64,
    /// Connections closed on accept because `max_connections` were open, none idle.
    pub connections_refused: u64,
    /// Idle connections closed to make room for a new one at `max_connections`.
    pub connections_evicted: u64,
    /// Connections closed for delivering no whole frame within `read_timeout`.
    pub connections_timed_out: u64,
    pub requests_answered: u64,
    /// Frames that could not be delimited (oversized, cut short).
    pub framing_errors: u64,
    /// Frames delimited but refused (verification or decoding).
    pub requests_refused: u64,
    /// The request verifier's own counts: which check refused how many.
    pub verify: VerifyCounters,
    /// Telemetry packets dropped because the publisher's queue was full.
    pub telemetry_dropped: u64,
    /// Telemetry packets the telemetry port refused.
    pub telemetry_failed: u64,
}

impl RpcCounters {
    /// Every bad frame, whatever was wrong with it.
    pub fn bad_frames(&self) -> u64 {
        self.framing_errors + self.requests_refused
    }
}

/// A shared view of a server's counters, readable while it runs.
#[derive(Debug, Clone, Default)]
pub struct RpcStats(Arc<Mutex<RpcCounters>>);

impl RpcStats {
    /// The counters now.
    pub fn snapshot(&self) -> RpcCounters {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut RpcCounters)) {
        change(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Signs `message` in an envelope for the wire.
fn seal<M: Contract>(key: &SigningKey, message: &M, now_ms: u64, rng: &mut (impl RngCore + ?Sized)) -> Vec<u8> {
    sign(key, &BusEnvelope::wrap(message, MessagePriority::High), now_ms, &mut &mut *rng)
}

/// A signed refusal: an empty `AdaptationCommand` envelope whose attributes say why.
fn seal_refusal(key: &SigningKey, reason: &str, now_ms: u64, rng: &mut (impl RngCore + ?Sized)) -> Vec<u8> {
    let mut envelope = BusEnvelope::wrap(&AdaptationCommand::default(), MessagePriority::High);
    envelope.attributes.insert(REFUSAL_ATTRIBUTE.to_owned(), reason.to_owned());
    sign(key, &envelope, now_ms, &mut &mut *rng)
}
