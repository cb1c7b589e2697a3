//! Weatherlight, the supervisor of the Esper-Lite services.
//!
//! [`Weatherlight`] starts every subsystem as a [`Service`] (a local tokio task,
//! so the same code runs on a turmoil host and on the real profile's runtime),
//! watches each life, restarts the ones that crash with capped, jittered
//! backoff, and shuts them down in order. Services send their telemetry through
//! its hub ([`TelemetrySender`]); Weatherlight publishes it on Oona, where
//! CRITICAL packets ride the emergency stream, and counts them
//! (`weatherlight.emergency.*`, [`EmergencyCounters`]).
//!
//! [`heartbeat`] is the network liveness probe — beats over TCP to a subsystem on
//! another host — which the `heartbeat` scenario drives across a partition.
//! Supervised services beat in-process instead ([`ServiceContext::beat`]).

pub mod heartbeat;
mod hub;
mod service;
mod supervisor;

pub use hub::{EmergencyCounters, HubCounters, TelemetrySender};
pub use service::{Lifetime, Service, ServiceContext, ServiceError, ServiceFuture, ServiceSpec};
pub use supervisor::{ServiceReport, ServiceState, ShutdownReason, SupervisorConfig, Weatherlight, WeatherlightReport};
