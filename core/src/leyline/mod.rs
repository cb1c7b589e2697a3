//! Leyline, the contracts every Esper subsystem speaks.
//!
//! * Messages ([`SystemStatePacket`], [`AdaptationCommand`], [`FieldReport`],
//!   [`TelemetryPacket`], [`EmergencySignal`], [`BusEnvelope`], the kernel prefetch
//!   messages) are protobuf via `prost` derive, with Esper-Lite's field tags and enum
//!   numbers (`esper.leyline.v1`), and serde for JSON reports. Maps are `BTreeMap`s so encodings are deterministic.
//! * Decoding untrusted bytes goes through [`Contract::decode_closed`]: malformed wire
//!   data and unknown enum values are typed errors, never panics.
//! * [`signing`] wraps an envelope in an HMAC-SHA256 frame with a timestamp and a
//!   nonce; [`Verifier`] refuses bad MACs, unsigned, stale, future and replayed frames.
//! * [`budget`] holds telemetry to 280 encoded bytes at the producer.
//!
//! Architecture invariant: no clock is read here. Timestamps and `now` come from the
//! caller (tokio time, virtual under the sim); nonces come from the caller's seeded RNG.

pub mod budget;
pub mod codec;
mod command;
pub(crate) mod counters;
mod emergency;
mod enums;
mod envelope;
mod kernel;
pub mod nonce;
mod policy;
mod report;
pub mod signing;
mod state;
mod telemetry;
mod timestamp;
mod verify;

pub use budget::{
    DROPPABLE, MAX_PARTS, METRICS_DROPPED_EVENT, TELEMETRY_BYTE_LIMIT, TelemetryBuilder, TelemetryTooLarge,
    encode_within_budget,
};
pub use codec::{Contract, DecodeError};
pub use command::{
    AdaptationCommand, CommandCircuitBreaker, CommandOptimizerAdjustment, CommandPayload, CommandRollback,
    CommandSeedOperation,
};
pub use emergency::EmergencySignal;
pub use enums::{
    BlueprintTier, BusMessageType, CircuitBreakerState, CommandType, EmergencyLevel, FieldReportOutcome, HealthStatus,
    MessagePriority, SeedLifecycleGate, SeedLifecycleStage, SeedOperation, TelemetryLevel,
};
pub use envelope::BusEnvelope;
pub use kernel::{KernelArtifactError, KernelArtifactReady, KernelPrefetchRequest};
pub use policy::PolicyUpdate;
pub use report::{FieldReport, FollowUpAction};
pub use signing::{SigningKey, SigningKeyError};
pub use state::{HardwareContext, SeedState, SystemStatePacket};
pub use telemetry::{MetricPoint, SystemHealth, TelemetryEvent, TelemetryPacket};
pub use timestamp::Timestamp;
pub use verify::{Verifier, VerifyCounters, VerifyError, VerifyPolicy};
