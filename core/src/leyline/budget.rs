//! The 280-byte telemetry budget.
//!
//! Esper-Lite's design promised telemetry packets under 280 encoded bytes so that a
//! packet always fits one small Redis stream entry and one network frame; the original
//! only asserted it in tests. Esper enforces it at the producer:
//! [`encode_within_budget`] refuses an oversized packet with the size and the limit,
//! and [`TelemetryBuilder`] assembles packets that fit by dropping the
//! lowest-priority metrics first and saying so in an event.

use prost::Message;

use super::{MessagePriority, MetricPoint, TelemetryEvent, TelemetryLevel, TelemetryPacket};

/// Largest encoded `TelemetryPacket` a producer may emit.
pub const TELEMETRY_BYTE_LIMIT: usize = 280;

/// Name (the event's `description`, as every Leyline event) of the note
/// [`TelemetryBuilder`] adds when it had to drop metrics.
pub const METRICS_DROPPED_EVENT: &str = "telemetry.metrics_dropped";

/// An encoded telemetry packet over [`TELEMETRY_BYTE_LIMIT`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "telemetry packet `{packet_id}` from `{source_subsystem}` encodes to {size} bytes, over the {limit}-byte limit{}",
    if *.critical_kept { " (even after dropping every non-critical metric)" } else { "" }
)]
pub struct TelemetryTooLarge {
    pub packet_id: String,
    pub source_subsystem: String,
    pub size: usize,
    pub limit: usize,
    /// True when the builder had nothing left it was allowed to drop.
    pub critical_kept: bool,
}

/// Encodes `packet`, refusing it when it exceeds [`TELEMETRY_BYTE_LIMIT`].
pub fn encode_within_budget(packet: &TelemetryPacket) -> Result<Vec<u8>, TelemetryTooLarge> {
    let size = packet.encoded_len();
    if size > TELEMETRY_BYTE_LIMIT {
        return Err(too_large(packet, size, false));
    }
    Ok(packet.encode_to_vec())
}

fn too_large(packet: &TelemetryPacket, size: usize, critical_kept: bool) -> TelemetryTooLarge {
    TelemetryTooLarge {
        packet_id: packet.packet_id.clone(),
        source_subsystem: packet.source_subsystem.clone(),
        size,
        limit: TELEMETRY_BYTE_LIMIT,
        critical_kept,
    }
}

/// Builds a telemetry packet that fits the budget.
///
/// Metrics carry a priority. When the packet is too large, metrics are dropped lowest
/// priority first (and, within a priority, the latest added first); `Critical` metrics
/// and events are never dropped. If anything was dropped, a WARNING event
/// [`METRICS_DROPPED_EVENT`] lists how many and which names, so nothing vanishes
/// silently.
#[derive(Debug, Clone)]
pub struct TelemetryBuilder {
    header: TelemetryPacket,
    metrics: Vec<(MessagePriority, MetricPoint)>,
}

impl TelemetryBuilder {
    /// Starts from `header` (id, timestamp, source, level, events, health); any metrics
    /// already in it are kept at `Normal` priority.
    pub fn new(mut header: TelemetryPacket) -> Self {
        let metrics = std::mem::take(&mut header.metrics).into_iter().map(|m| (MessagePriority::Normal, m)).collect();
        Self { header, metrics }
    }

    /// Adds a metric at `priority`.
    pub fn metric(mut self, priority: MessagePriority, metric: MetricPoint) -> Self {
        self.metrics.push((priority, metric));
        self
    }

    /// Adds an event; events are never dropped.
    pub fn event(mut self, event: TelemetryEvent) -> Self {
        self.header.events.push(event);
        self
    }

    /// The packet with as many metrics as fit, highest priority first in the order
    /// they were added.
    pub fn build(self) -> Result<TelemetryPacket, TelemetryTooLarge> {
        let mut kept = self.metrics;
        // Stable sort: highest priority first, insertion order within a priority.
        kept.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));
        let mut dropped = Dropped::default();
        loop {
            let packet = assemble(&self.header, &kept, &dropped);
            let size = packet.encoded_len();
            if size <= TELEMETRY_BYTE_LIMIT {
                return Ok(packet);
            }
            match kept.last() {
                Some((priority, _)) if *priority != MessagePriority::Critical => {
                    if let Some((priority, _)) = kept.pop() {
                        dropped.count += 1;
                        dropped.highest = dropped.highest.max(priority);
                    }
                }
                _ => return Err(too_large(&packet, size, true)),
            }
        }
    }
}

/// What the builder left out. Kept to a count and a priority, not names: the note
/// has to fit in the same 280 bytes as the metrics it replaces.
#[derive(Debug, Clone, Copy, Default)]
struct Dropped {
    count: usize,
    highest: MessagePriority,
}

fn assemble(header: &TelemetryPacket, kept: &[(MessagePriority, MetricPoint)], dropped: &Dropped) -> TelemetryPacket {
    let mut packet = header.clone();
    packet.metrics = kept.iter().map(|(_, m)| m.clone()).collect();
    if dropped.count > 0 {
        packet.events.push(TelemetryEvent {
            description: METRICS_DROPPED_EVENT.to_owned(),
            level: TelemetryLevel::Warning.into(),
            attributes: [
                ("count".to_owned(), dropped.count.to_string()),
                ("priority".to_owned(), format!("<={:?}", dropped.highest)),
            ]
            .into(),
            ..TelemetryEvent::default()
        });
    }
    packet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leyline::Timestamp;

    /// Tolaria's end-of-epoch packet with the metrics issue 7 asks of it.
    fn tolaria_epoch_packet() -> TelemetryBuilder {
        let header = TelemetryPacket {
            packet_id: "tolaria-e3".into(),
            timestamp: Some(Timestamp::from_millis(1_767_225_600_123)),
            source_subsystem: "tolaria".into(),
            level: TelemetryLevel::Info.into(),
            ..TelemetryPacket::default()
        };
        TelemetryBuilder::new(header)
            .metric(MessagePriority::High, MetricPoint::new("tolaria.training.loss", 0.6875, ""))
            .metric(MessagePriority::High, MetricPoint::new("tolaria.training.latency_ms", 4.35, "ms"))
            .metric(MessagePriority::Normal, MetricPoint::new("tolaria.seeds.active", 1.0, ""))
            .metric(MessagePriority::Low, MetricPoint::new("tolaria.train.graph_enabled", 0.0, ""))
            .metric(MessagePriority::Normal, MetricPoint::new("slo.tolaria_latency_actual", 4.35, "ms"))
            .metric(MessagePriority::Normal, MetricPoint::new("slo.tolaria_latency_objective", 18.0, "ms"))
    }

    #[test]
    fn realistic_tolaria_epoch_packet_fits_without_dropping() {
        let packet = tolaria_epoch_packet().build().expect("fits");
        assert_eq!(packet.metrics.len(), 6, "nothing should be dropped");
        assert!(packet.events.is_empty());
        let bytes = encode_within_budget(&packet).expect("within budget");
        assert!(bytes.len() <= TELEMETRY_BYTE_LIMIT, "{} bytes", bytes.len());
    }

    #[test]
    fn oversized_packet_is_refused_with_size_and_limit() {
        let mut packet = tolaria_epoch_packet().build().expect("fits");
        for i in 0..8 {
            packet.metrics.push(MetricPoint::new(format!("tolaria.extra.metric_{i}"), f64::from(i), "ms"));
        }
        let size = packet.encoded_len();
        let err = encode_within_budget(&packet).expect_err("oversized");
        assert_eq!(err.size, size);
        assert_eq!(err.limit, 280);
        assert!(err.to_string().contains(&format!("{size} bytes, over the 280-byte limit")), "{err}");
    }

    #[test]
    fn builder_drops_lowest_priority_first_and_says_so() {
        let mut builder = tolaria_epoch_packet();
        for i in 0..4 {
            builder = builder.metric(MessagePriority::Low, MetricPoint::new(format!("tolaria.debug.m{i}"), 1.0, ""));
        }
        let packet = builder.build().expect("fits after dropping");
        assert!(packet.encoded_len() <= TELEMETRY_BYTE_LIMIT);
        // The high-priority metrics survive; every low one goes before any normal one.
        assert!(packet.metric("tolaria.training.loss").is_some());
        assert!(packet.metric("tolaria.training.latency_ms").is_some());
        let lows = ["tolaria.train.graph_enabled", "tolaria.debug.m0", "tolaria.debug.m3"];
        assert!(lows.iter().all(|name| packet.metric(name).is_none()), "{:?}", packet.metrics);
        let event = packet.events.iter().find(|e| e.description == METRICS_DROPPED_EVENT).expect("drop event");
        let dropped: usize = event.attributes["count"].parse().expect("a count");
        assert_eq!(dropped, 10 - packet.metrics.len(), "the event counts exactly what is missing");
        assert_eq!(packet.priority(), MessagePriority::High, "a WARNING event raises the priority");
    }

    #[test]
    fn builder_refuses_when_only_critical_metrics_remain() {
        let mut builder = TelemetryBuilder::new(TelemetryPacket { packet_id: "p".into(), ..Default::default() });
        for i in 0..12 {
            builder =
                builder.metric(MessagePriority::Critical, MetricPoint::new(format!("critical.metric.{i}"), 1.0, "ms"));
        }
        let err = builder.build().expect_err("critical metrics are never dropped");
        assert!(err.critical_kept);
        assert!(err.size > TELEMETRY_BYTE_LIMIT);
    }
}
