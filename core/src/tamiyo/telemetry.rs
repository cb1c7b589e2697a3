//! Tamiyo's per-step telemetry, held to Leyline's 280-byte packet budget.
//!
//! Each decision yields one metrics packet (`tamiyo.validation_loss`,
//! `tamiyo.loss_delta`, `tamiyo.blueprint.risk`, `tamiyo.inference.latency_ms`,
//! `tamiyo.conservative_mode`) and, when the risk engine raised events, as many event
//! packets as the events need — events are never dropped, and a packet with a
//! CRITICAL event travels at CRITICAL priority. Packets wait in a bounded outbox
//! until the publisher (Oona, or a test) drains them; when it falls behind, the oldest
//! are dropped and counted rather than growing without bound.

use std::collections::VecDeque;

use prost::Message;

use crate::leyline::{
    MessagePriority, MetricPoint, TELEMETRY_BYTE_LIMIT, TelemetryBuilder, TelemetryEvent, TelemetryLevel,
    TelemetryPacket, Timestamp,
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

/// The packets for one decision: metrics first, then events (see the module docs).
pub fn step_packets(figures: &StepFigures, events: Vec<TelemetryEvent>, timestamp_ms: u64) -> Vec<TelemetryPacket> {
    let header = |suffix: &str| TelemetryPacket {
        packet_id: format!("tamiyo-s{}{suffix}", figures.global_step),
        timestamp: Some(Timestamp::from_millis(timestamp_ms)),
        source_subsystem: SOURCE.to_owned(),
        level: TelemetryLevel::Info.into(),
        ..TelemetryPacket::default()
    };
    let metric = |name: &str, value: f64, unit: &str| MetricPoint::new(name, value, unit);
    let metrics = TelemetryBuilder::new(header(""))
        .metric(MessagePriority::High, metric("tamiyo.loss_delta", f64::from(figures.loss_delta), ""))
        .metric(MessagePriority::High, metric("tamiyo.inference.latency_ms", figures.inference_latency_ms, "ms"))
        .metric(MessagePriority::Normal, metric("tamiyo.validation_loss", f64::from(figures.validation_loss), ""))
        .metric(MessagePriority::Normal, metric("tamiyo.blueprint.risk", f64::from(figures.blueprint_risk), ""))
        .metric(
            MessagePriority::Normal,
            metric("tamiyo.conservative_mode", f64::from(u8::from(figures.conservative_mode)), ""),
        );
    // Five short metrics fit with room to spare; the builder's drop rule is the backstop.
    let mut packets = Vec::from_iter(metrics.build().ok());
    let mut pending = events.into_iter().peekable();
    while pending.peek().is_some() {
        let mut packet = header(&format!("-e{}", packets.len()));
        while let Some(event) = pending.next_if(|event| fits_with(&packet, event)) {
            packet.level = packet.level.max(event.level);
            packet.events.push(event);
        }
        if packet.events.is_empty() {
            // One event too large for a packet of its own: send it without attributes.
            if let Some(mut event) = pending.next() {
                event.attributes.clear();
                packet.level = packet.level.max(event.level);
                packet.events.push(event);
            }
        }
        debug_assert!(packet.encoded_len() <= TELEMETRY_BYTE_LIMIT);
        packets.push(packet);
    }
    packets
}

fn fits_with(packet: &TelemetryPacket, event: &TelemetryEvent) -> bool {
    // A repeated field costs its tag, its length varint and the message.
    let added = 1 + prost::length_delimiter_len(event.encoded_len()) + event.encoded_len();
    packet.encoded_len() + added <= TELEMETRY_BYTE_LIMIT
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
    use super::*;
    use crate::leyline::MessagePriority;
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
