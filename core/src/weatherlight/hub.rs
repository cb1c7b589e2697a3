//! The telemetry hub: every supervised service sends its telemetry to
//! Weatherlight, which publishes it on Oona. A packet carrying a CRITICAL event
//! (priority CRITICAL, [`TelemetryPacket::priority`]) rides the emergency stream
//! — Oona routes by that priority — and is counted in
//! `weatherlight.emergency.telemetry_total`; when it comes from Tamiyo also in
//! `weatherlight.emergency.tamiyo_total`, with the time of the last one behind
//! `weatherlight.emergency.tamiyo_last_ms_ago`. Every packet routed or refused is
//! counted too; the counters are declared once ([`HubCounters`]), so each one
//! reaches Nissa in Weatherlight's status packet.
//!
//! The channel is bounded: a service that outpaces the bus waits at `send`
//! (Tolaria's telemetry is a few packets an epoch), it does not grow memory.

use tokio::sync::mpsc;

use crate::leyline::counters::leyline_counters;
use crate::leyline::{MessagePriority, MetricPoint, TelemetryPacket};
use crate::tolaria::ports::{PortError, TelemetryPort};

/// The subsystem whose emergencies get their own counters.
const TAMIYO: &str = "tamiyo";

/// A service's handle on the hub. It is Tolaria's (or anyone's) telemetry port.
#[derive(Debug, Clone)]
pub struct TelemetrySender(mpsc::Sender<TelemetryPacket>);

/// Weatherlight's end of the hub.
#[derive(Debug)]
pub(crate) struct TelemetryInbox(pub(crate) mpsc::Receiver<TelemetryPacket>);

/// A hub holding at most `capacity` packets not yet published.
pub(crate) fn telemetry_channel(capacity: usize) -> (TelemetrySender, TelemetryInbox) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (TelemetrySender(sender), TelemetryInbox(receiver))
}

impl TelemetryPort for TelemetrySender {
    async fn publish_telemetry(&mut self, packet: &TelemetryPacket) -> Result<(), PortError> {
        self.0.send(packet.clone()).await.map_err(|_| PortError::Unavailable {
            service: "weatherlight",
            reason: "the telemetry hub is closed (Weatherlight has stopped)".to_owned(),
        })
    }
}

leyline_counters! {
    /// What the hub routed, named as Weatherlight's metrics; every one rides
    /// Weatherlight's status packet.
    #[derive(serde::Serialize)]
    pub struct HubCounters {
        /// CRITICAL packets routed to the emergency stream.
        telemetry_total => "weatherlight.emergency.telemetry_total",
        /// Of those, Tamiyo's.
        tamiyo_total => "weatherlight.emergency.tamiyo_total",
        /// Packets of any priority the hub published.
        routed_total => "weatherlight.telemetry.routed_total",
        /// Packets the bus refused or failed to take (logged, not retried).
        publish_failures_total => "weatherlight.telemetry.publish_failures_total",
    }
}

/// The hub's counters and the time of Tamiyo's last emergency. Derefs to
/// [`HubCounters`], so `report.emergency.routed_total` reads a counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EmergencyCounters {
    #[serde(flatten)]
    pub counters: HubCounters,
    /// Unix ms of the last CRITICAL Tamiyo packet: its own timestamp (when Tamiyo
    /// raised it), or when Weatherlight received it if it carries none.
    pub tamiyo_last_ms: Option<u64>,
}

impl std::ops::Deref for EmergencyCounters {
    type Target = HubCounters;

    fn deref(&self) -> &HubCounters {
        &self.counters
    }
}

impl std::ops::DerefMut for EmergencyCounters {
    fn deref_mut(&mut self) -> &mut HubCounters {
        &mut self.counters
    }
}

impl EmergencyCounters {
    /// Whether `packet` counts as emergency telemetry.
    pub fn is_emergency(packet: &TelemetryPacket) -> bool {
        packet.priority() == MessagePriority::Critical
    }

    /// Counts `packet`, received at `now_ms`, before it is published.
    pub(crate) fn note(&mut self, packet: &TelemetryPacket, now_ms: u64) {
        if !Self::is_emergency(packet) {
            return;
        }
        self.telemetry_total += 1;
        if packet.source_subsystem == TAMIYO {
            self.tamiyo_total += 1;
            let raised_ms = packet.timestamp.as_ref().map_or(now_ms, |at| at.as_millis());
            self.tamiyo_last_ms = Some(self.tamiyo_last_ms.map_or(raised_ms, |last| last.max(raised_ms)));
        }
        tracing::warn!(
            source = %packet.source_subsystem,
            packet_id = %packet.packet_id,
            total = self.telemetry_total,
            "weatherlight.emergency.telemetry"
        );
    }

    /// Every counter as a metric point, then `tamiyo_last_ms_ago`, present once
    /// Tamiyo has raised an emergency (before that there is no "ago" to report).
    pub fn metrics(&self, now_ms: u64) -> Vec<MetricPoint> {
        let mut points: Vec<MetricPoint> = self.counters.points().collect();
        if let Some(last_ms) = self.tamiyo_last_ms {
            let ago = now_ms.saturating_sub(last_ms) as f64;
            points.push(MetricPoint::new("weatherlight.emergency.tamiyo_last_ms_ago", ago, "ms"));
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leyline::{TelemetryEvent, TelemetryLevel, Timestamp};

    fn packet(source: &str, level: TelemetryLevel) -> TelemetryPacket {
        TelemetryPacket {
            source_subsystem: source.to_owned(),
            events: vec![TelemetryEvent::named("drill", level, &[])],
            ..TelemetryPacket::default()
        }
    }

    #[test]
    fn counts_critical_packets_and_tamiyo_separately() {
        let mut counters = EmergencyCounters::default();
        counters.note(&packet("tamiyo", TelemetryLevel::Error), 10);
        counters.note(&packet("tolaria", TelemetryLevel::Critical), 20);
        assert_eq!(counters.metrics(25).len(), HubCounters::NAMES.len(), "no `ago` before Tamiyo's first emergency");
        counters.note(&packet("tamiyo", TelemetryLevel::Critical), 30);
        assert_eq!((counters.telemetry_total, counters.tamiyo_total, counters.tamiyo_last_ms), (2, 1, Some(30)));
        let ago = counters.metrics(100).into_iter().find(|m| m.name.ends_with("tamiyo_last_ms_ago")).map(|m| m.value);
        assert_eq!(ago, Some(70.0));
        let stamped = TelemetryPacket {
            timestamp: Some(Timestamp::from_millis(42)),
            ..packet("tamiyo", TelemetryLevel::Critical)
        };
        counters.note(&stamped, 50);
        assert_eq!(counters.tamiyo_last_ms, Some(42), "the time Tamiyo raised it, not when it arrived");
    }
}
