//! The publisher snapshot: an Oona client's counters and the normal stream's
//! depth as telemetry, so Nissa's `oona_queue_depth` rule has a live producer.
//!
//! Esper-Lite's alert watches `oona.queue.depth`, which its client never emitted
//! (it emitted `oona.queue_depth_*`). Here the snapshot reads the normal stream's
//! depth (XLEN) when it is taken — the gauge the rule needs — and carries every
//! counter of [`OonaMetrics`] beside it, reroutes and drops included. Counters are
//! High priority, so the builder never drops them; a snapshot too large for one
//! packet is split into numbered parts.

use rand::RngCore;

use super::client::OonaClient;
use crate::leyline::{MessagePriority, MetricPoint, TelemetryBuilder, TelemetryLevel, TelemetryPacket, Timestamp};
use crate::net::Connector;
use crate::planted::{Planted, PlantedBug};

/// `source_subsystem` of the snapshot's packets.
pub const SOURCE: &str = "oona";
/// The gauge Nissa's `oona_queue_depth` rule watches.
pub const QUEUE_DEPTH: &str = "oona.queue.depth";

impl<C: Connector, R: RngCore> OonaClient<C, R> {
    /// The snapshot's metric points: `oona.queue.depth` (the normal stream's
    /// XLEN now), then every counter. When Redis cannot say how deep the stream
    /// is, the depth is left out (and logged) rather than guessed.
    pub async fn snapshot_points(&mut self) -> Vec<MetricPoint> {
        let stream = self.config.normal_stream.clone();
        let mut points = Vec::with_capacity(super::OonaMetrics::NAMES.len() + 1);
        match self.xlen(&stream).await {
            Ok(depth) => points.push(MetricPoint::new(QUEUE_DEPTH, depth as f64, "")),
            Err(error) => tracing::warn!(%error, stream, "oona.snapshot.depth_unavailable"),
        }
        let mut counters = self.metrics_snapshot();
        if self.config.planted.armed(PlantedBug::SnapshotLosesIncrement) {
            counters.publish_total = counters.publish_total.saturating_sub(1);
        }
        points.extend(counters.points());
        points
    }
}

/// `points` as Oona's telemetry packets (`<id>-p<n>` when split), never dropping
/// a point; `planted` is the run's planted bug (TEST ONLY).
pub fn snapshot_packets(id: &str, points: Vec<MetricPoint>, now_ms: u64, planted: Planted) -> Vec<TelemetryPacket> {
    let header = TelemetryPacket {
        packet_id: id.to_owned(),
        timestamp: Some(Timestamp::from_millis(now_ms)),
        source_subsystem: SOURCE.to_owned(),
        level: TelemetryLevel::Info.into(),
        ..TelemetryPacket::default()
    };
    // Oona's names and a number always fit a packet of their own, so the builder
    // cannot refuse one; should it, the refusal is logged and nothing is sent.
    TelemetryBuilder::new(header).metrics(MessagePriority::High, points).planted(planted).build().unwrap_or_else(
        |error| {
            tracing::error!(%error, "oona.snapshot_refused");
            Vec::new()
        },
    )
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::oona::OonaMetrics;

    #[test]
    fn every_point_of_a_snapshot_reaches_a_packet_within_the_budget() {
        let counters = OonaMetrics { publish_rerouted: 7, publish_dropped: 3, ..OonaMetrics::default() };
        let mut points = vec![MetricPoint::new(QUEUE_DEPTH, 4_321.0, "")];
        points.extend(counters.points());
        let packets = snapshot_packets("oona-1", points.clone(), 5, Planted::NONE);
        assert!(packets.len() > 1, "18 points do not fit 280 bytes");
        assert!(packets.iter().all(|packet| packet.encoded_len() <= crate::leyline::TELEMETRY_BYTE_LIMIT));
        for point in &points {
            let sent = packets.iter().find_map(|packet| packet.metric(&point.name));
            assert_eq!(sent, Some(point.value), "{}", point.name);
        }
    }
}
