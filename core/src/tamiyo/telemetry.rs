//! Tamiyo's per-step telemetry, held to Leyline's 280-byte packet budget.
//!
//! Each decision yields its metrics (`tamiyo.validation_loss`,
//! `tamiyo.loss_delta`, `tamiyo.blueprint.risk`, `tamiyo.inference.latency_ms`,
//! `tamiyo.conservative_mode`) and the risk engine's events, split by Leyline's
//! packet plan into as many numbered parts as they need — events are never
//! dropped, and a part with a CRITICAL event travels at CRITICAL priority. Packets wait in a bounded outbox
//! until the publisher (Oona, or a test) drains them; when it falls behind, the oldest
//! are dropped and counted rather than growing without bound.

use std::collections::VecDeque;

use crate::leyline::{
    MessagePriority, MetricPoint, TelemetryBuilder, TelemetryEvent, TelemetryLevel, TelemetryPacket, Timestamp,
};

/// `source_subsystem` of every Tamiyo packet.
pub const SOURCE: &str = "tamiyo";

/// The figures of one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepFigures {
    pub global_step: u64,
    pub validation_loss: f32,
    pub loss_delta: f32,
    pub blueprint_risk: f32,
    pub inference_latency_ms: f64,
    pub conservative_mode: bool,
}

/// The packets for one decision: metrics first, then events, split by Leyline's
/// packet plan (see the module docs).
pub fn step_packets(figures: &StepFigures, events: Vec<TelemetryEvent>, timestamp_ms: u64) -> Vec<TelemetryPacket> {
    let header = TelemetryPacket {
        packet_id: format!("tamiyo-s{}", figures.global_step),
        timestamp: Some(Timestamp::from_millis(timestamp_ms)),
        source_subsystem: SOURCE.to_owned(),
        level: TelemetryLevel::Info.into(),
        ..TelemetryPacket::default()
    };
    let metric = |name: &str, value: f64, unit: &str| MetricPoint::new(name, value, unit);
    let conservative = f64::from(u8::from(figures.conservative_mode));
    TelemetryBuilder::new(header)
        .metric(MessagePriority::High, metric("tamiyo.loss_delta", f64::from(figures.loss_delta), ""))
        .metric(MessagePriority::High, metric("tamiyo.inference.latency_ms", figures.inference_latency_ms, "ms"))
        .metric(MessagePriority::High, metric("tamiyo.conservative_mode", conservative, ""))
        .metric(MessagePriority::Normal, metric("tamiyo.validation_loss", f64::from(figures.validation_loss), ""))
        .metric(MessagePriority::Normal, metric("tamiyo.blueprint.risk", f64::from(figures.blueprint_risk), ""))
        .events(events)
        .build()
        .unwrap_or_else(|error| {
            // Only an item too large for a packet of its own is refused, and
            // Tamiyo's metric names are short; events lose their attributes instead.
            tracing::error!(%error, "tamiyo.telemetry_refused");
            Vec::new()
        })
}

/// Packets waiting for the publisher, bounded.
#[derive(Debug, Clone)]
pub struct TelemetryOutbox {
    packets: VecDeque<TelemetryPacket>,
    capacity: usize,
    dropped: u64,
}

impl TelemetryOutbox {
    /// An outbox holding at most `capacity` packets.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a telemetry outbox needs room for one packet");
        Self { packets: VecDeque::with_capacity(capacity.min(1024)), capacity, dropped: 0 }
    }

    /// Queues `packet`, dropping the oldest when full.
    pub fn push(&mut self, packet: TelemetryPacket) {
        if self.packets.len() == self.capacity {
            self.packets.pop_front();
            self.dropped += 1;
        }
        self.packets.push_back(packet);
        debug_assert!(self.packets.len() <= self.capacity);
    }

    /// Everything queued, oldest first.
    pub fn drain(&mut self) -> Vec<TelemetryPacket> {
        self.packets.drain(..).collect()
    }

    /// Packets dropped because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::leyline::TELEMETRY_BYTE_LIMIT;
    use crate::tamiyo::risk::event;

    fn figures() -> StepFigures {
        StepFigures {
            global_step: 123_456,
            validation_loss: 0.6875,
            loss_delta: -0.0123,
            blueprint_risk: 0.95,
            inference_latency_ms: 12.345,
            conservative_mode: true,
        }
    }

    #[test]
    fn metrics_packet_carries_all_five_metrics_within_budget() {
        let packets = step_packets(&figures(), Vec::new(), 1_767_225_600_123);
        assert_eq!(packets.len(), 1);
        let packet = &packets[0];
        assert!(packet.encoded_len() <= TELEMETRY_BYTE_LIMIT, "{} bytes", packet.encoded_len());
        assert_eq!(packet.metrics.len(), 5, "nothing dropped");
        assert_eq!(packet.metric("tamiyo.blueprint.risk"), Some(f64::from(0.95_f32)));
        assert_eq!(packet.metric("tamiyo.conservative_mode"), Some(1.0));
    }

    #[test]
    fn many_events_spill_into_extra_packets_none_lost_all_within_budget() {
        let long = "BP0000000000000000000000000000000000000000000000000000000000000000000001";
        let events: Vec<_> = (0..9)
            .map(|i| event(&format!("bp_quarantine_{i}"), TelemetryLevel::Warning, &[("blueprint", long)]))
            .chain([TelemetryEvent {
                description: "timeout_urza".to_owned(),
                level: TelemetryLevel::Critical.into(),
                attributes: [("blueprint".to_owned(), long.repeat(5))].into(),
                ..TelemetryEvent::default()
            }])
            .collect();
        let packets = step_packets(&figures(), events.clone(), 0);
        assert!(packets.len() > 2, "events needed several packets: {}", packets.len());
        let sent: Vec<&str> = packets.iter().flat_map(|p| &p.events).map(|e| e.description.as_str()).collect();
        let expected: Vec<&str> = events.iter().map(|e| e.description.as_str()).collect();
        assert_eq!(sent, expected, "every event, in order");
        for packet in &packets {
            assert!(
                packet.encoded_len() <= TELEMETRY_BYTE_LIMIT,
                "{}: {} bytes",
                packet.packet_id,
                packet.encoded_len()
            );
        }
        let last = packets.last().expect("event packet");
        assert_eq!(last.priority(), MessagePriority::Critical);
        assert!(last.events[0].attributes.is_empty(), "an oversized event goes out without attributes");
    }

    #[test]
    fn outbox_drops_oldest_when_full_and_counts() {
        let mut outbox = TelemetryOutbox::new(2);
        for step in 0..3 {
            outbox.push(TelemetryPacket { packet_id: format!("p{step}"), ..TelemetryPacket::default() });
        }
        assert_eq!(outbox.dropped(), 1);
        let ids: Vec<String> = outbox.drain().into_iter().map(|p| p.packet_id).collect();
        assert_eq!(ids, ["p1", "p2"]);
        assert!(outbox.drain().is_empty());
    }
}
