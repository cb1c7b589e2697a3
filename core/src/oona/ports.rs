//! Oona as Tolaria's telemetry and emergency ports: the trainer publishes onto the
//! bus without knowing it is there.
//!
//! Emergency signals go out CRITICAL (never dropped by backpressure, held until Redis
//! has them durably) and route to the emergency stream; telemetry keeps the priority
//! its events give it, so a packet with a CRITICAL event rides the emergency stream
//! too. A publish the bus refused (dropped, rate-limited, Redis error) is a
//! [`PortError`], which Tolaria counts.

use rand::RngCore;

use super::client::OonaClient;
use super::publish::PublishOutcome;
use crate::leyline::{BusEnvelope, EmergencySignal, MessagePriority, MetricPoint, TelemetryPacket};
use crate::net::Connector;
use crate::tolaria::ports::{EmergencyPort, PortError, TelemetryPort};

impl<C: Connector, R: RngCore> OonaClient<C, R> {
    async fn publish_port(&mut self, envelope: BusEnvelope) -> Result<(), PortError> {
        match self.publish(&envelope).await {
            Ok(PublishOutcome::Published { .. }) => Ok(()),
            Ok(refused) => Err(PortError::Refused { service: "oona", reason: format!("{refused:?}") }),
            Err(error) => Err(PortError::Unavailable { service: "oona", reason: error.to_string() }),
        }
    }
}

impl<C: Connector, R: RngCore> TelemetryPort for OonaClient<C, R> {
    async fn publish_telemetry(&mut self, packet: &TelemetryPacket) -> Result<(), PortError> {
        self.publish_port(BusEnvelope::wrap(packet, packet.priority())).await
    }

    async fn bus_snapshot(&mut self) -> Vec<MetricPoint> {
        self.snapshot_points().await
    }
}

impl<C: Connector, R: RngCore> EmergencyPort for OonaClient<C, R> {
    async fn broadcast(&mut self, signal: &EmergencySignal) -> Result<(), PortError> {
        self.publish_port(BusEnvelope::wrap(signal, MessagePriority::Critical)).await
    }
}
