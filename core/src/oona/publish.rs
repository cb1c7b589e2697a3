//! Publishing: route by message type and priority, apply backpressure, sign, XADD.
//!
//! Order of decisions, as in Esper-Lite: a message bound for the normal stream
//! looks at its depth (XLEN) first — at `backpressure_drop_threshold` a
//! non-critical message is dropped, at `emergency_threshold` it is rerouted to
//! the emergency stream. Kernel requests are dropped at the same depth of their
//! own stream (a stalled Urza must not grow it without bound), never rerouted. Anything headed for the emergency stream that is not
//! critical takes a token from the emergency bucket or is dropped. Critical
//! messages always go out, and are held until durable (see `outbox`).

use rand::RngCore;
use tokio::time::Instant;

use super::client::OonaClient;
use super::config::StreamConfig;
use super::error::OonaError;
use super::outbox::Held;
use crate::leyline::{BusEnvelope, BusMessageType, MessagePriority};
use crate::net::Connector;
use crate::planted::PlantedBug;

/// Oona's four streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamKind {
    /// State, commands, reports.
    Normal,
    /// High-priority traffic and reroutes.
    Emergency,
    /// Telemetry.
    Telemetry,
    /// Policy updates.
    Policy,
    /// Kernel prefetch requests (Kasmina → Urza).
    KernelRequests,
    /// Kernel prefetch answers (Urza → Kasmina).
    KernelReplies,
}

impl StreamKind {
    /// This stream's name under `config`.
    pub fn name(self, config: &StreamConfig) -> &str {
        match self {
            Self::Normal => &config.normal_stream,
            Self::Emergency => &config.emergency_stream,
            Self::Telemetry => &config.telemetry_stream,
            Self::Policy => &config.policy_stream,
            Self::KernelRequests => &config.kernel_request_stream,
            Self::KernelReplies => &config.kernel_reply_stream,
        }
    }

    /// Where `envelope` goes before backpressure: high and critical priorities and
    /// emergency signals to the emergency stream; telemetry and policy updates to
    /// theirs, kernel requests and answers to the kernel streams; everything else to
    /// the normal stream.
    pub fn route(envelope: &BusEnvelope) -> Self {
        if envelope.priority() >= MessagePriority::High {
            return Self::Emergency;
        }
        match envelope.message_type() {
            BusMessageType::EmergencySignal => Self::Emergency,
            BusMessageType::Telemetry => Self::Telemetry,
            BusMessageType::PolicyUpdate => Self::Policy,
            BusMessageType::KernelPrefetchRequest => Self::KernelRequests,
            BusMessageType::KernelPrefetchReady
            | BusMessageType::KernelPrefetchError
            | BusMessageType::KernelCatalogUpdate => Self::KernelReplies,
            _ => Self::Normal,
        }
    }
}

/// What happened to one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// XADDed to `stream` as `id`; `rerouted` when backpressure moved it there.
    Published { stream: StreamKind, id: String, rerouted: bool },
    /// Dropped: the normal (or kernel-request) stream was `depth` deep (counted in
    /// `publish_dropped`).
    Dropped { depth: u64 },
    /// Dropped: the emergency token bucket was empty (`emergency_rate_dropped`).
    RateLimited,
}

impl<C: Connector, R: RngCore> OonaClient<C, R> {
    /// Publishes `envelope`. An error means Redis did not acknowledge it; a
    /// critical message that returned `Published` will be delivered even if
    /// Redis crashes before persisting it.
    pub async fn publish(&mut self, envelope: &BusEnvelope) -> Result<PublishOutcome, OonaError> {
        let critical = envelope.priority() == MessagePriority::Critical;
        if critical {
            self.outbox.settle(self.link.last_ok());
            if self.outbox.is_full() {
                return Err(OonaError::OutboxFull { capacity: self.outbox.capacity() });
            }
        }
        let mut target = StreamKind::route(envelope);
        let mut rerouted = false;
        if matches!(target, StreamKind::Normal | StreamKind::KernelRequests) {
            let stream = target.name(&self.config).to_owned();
            let depth = self.xlen(&stream).await?;
            self.metrics.queue_depth_max = self.metrics.queue_depth_max.max(depth);
            if depth >= self.config.backpressure_drop_threshold && !critical {
                self.metrics.publish_dropped += 1;
                tracing::warn!(depth, stream = ?target, "oona: stream past the drop threshold; message dropped");
                return Ok(PublishOutcome::Dropped { depth });
            }
            if target == StreamKind::Normal && depth >= self.config.emergency_threshold {
                (target, rerouted) = (StreamKind::Emergency, true);
            }
        }
        if target == StreamKind::Emergency && !critical && !self.bucket.try_take(Instant::now()) {
            self.metrics.emergency_rate_dropped += 1;
            return Ok(PublishOutcome::RateLimited);
        }
        if rerouted {
            self.metrics.publish_rerouted += 1;
        }
        let stream = target.name(&self.config).to_owned();
        let id = self.xadd(&stream, envelope).await?;
        self.metrics.publish_total += 1;
        if target == StreamKind::Emergency {
            self.metrics.emergency_published += 1;
        }
        if critical && !self.config.planted.armed(PlantedBug::OutboxForgetsCritical) {
            self.outbox.push(Held { stream, id: id.clone(), envelope: envelope.clone(), sent_at: Instant::now() });
        }
        Ok(PublishOutcome::Published { stream: target, id, rerouted })
    }
}
