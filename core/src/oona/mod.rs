//! Oona, the message bus: Leyline envelopes over Redis Streams.
//!
//! * [`OonaClient::publish`] routes an envelope by type and priority
//!   ([`StreamKind::route`]), applies the normal stream's backpressure (reroute to
//!   the emergency stream at `emergency_threshold`, drop non-critical messages at
//!   `backpressure_drop_threshold`), rate-limits emergency traffic with a token
//!   bucket, signs the envelope (HMAC, [`crate::leyline::signing`]) and XADDs it.
//! * [`OonaClient::consume`] reads with a consumer group, acks after the handler
//!   succeeds, reclaims stale pending entries and dead-letters the hopeless.
//! * [`OonaClient::metrics_snapshot`] returns Esper-Lite's counters;
//!   [`OonaClient::snapshot_points`] adds the normal stream's depth
//!   (`oona.queue.depth`) for telemetry ([`snapshot_packets`]).
//!
//! The connection is the `redis` crate's multiplexed connection over the
//! [`crate::net::Connector`] seam, so the same client runs on tokio TCP against
//! a real `redis-server` and on turmoil TCP against the simulated one.
//!
//! Architecture invariant: delivery is at-least-once. A critical message whose
//! publish returned `Published` is delivered to the group even if Redis crashes
//! before persisting it (the client holds it until it is durable and republishes
//! it after a restart); non-critical messages are only ever dropped by counted
//! backpressure, or lost with Redis's last unpersisted second.

mod backoff;
mod bucket;
mod client;
mod config;
mod consume;
mod entries;
mod error;
mod link;
mod metrics;
mod outbox;
mod ports;
mod publish;
mod snapshot;

pub use backoff::Backoff;
pub use bucket::TokenBucket;
pub use client::{ClientParts, FRAME_FIELD, OonaClient};
pub use config::{
    EMERGENCY_MAX_PER_MIN_ENV, EMERGENCY_STREAM_ENV, EMERGENCY_THRESHOLD_ENV, NORMAL_STREAM_ENV, POLICY_STREAM_ENV,
    StreamConfig, StreamConfigError, TELEMETRY_STREAM_ENV,
};
pub use consume::{ConsumeRound, Delivery, Handled};
pub use entries::{Entry, entries};
pub use error::OonaError;
pub use metrics::OonaMetrics;
pub use publish::{PublishOutcome, StreamKind};
pub use snapshot::{QUEUE_DEPTH, SOURCE as SNAPSHOT_SOURCE, snapshot_packets};
