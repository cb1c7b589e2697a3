//! Kasmina's telemetry, held to Leyline's 280-byte packet budget: metrics are
//! packed greedily into as many packets as they need, then events likewise —
//! nothing is dropped to fit, because per-seed metrics grow with the seeds.

use prost::Message;

use crate::leyline::{MetricPoint, TELEMETRY_BYTE_LIMIT, TelemetryEvent, TelemetryLevel, TelemetryPacket, Timestamp};

/// `source_subsystem` of every Kasmina packet.
pub const SOURCE: &str = "kasmina";

/// Packs `metrics` then `events` into Kasmina packets of at most 280 encoded
/// bytes, named `<prefix>-<n>`. A single item too large for a packet of its own is
/// impossible for Kasmina's names (events cut attributes to 48 characters).
pub fn packets(
    prefix: &str,
    metrics: Vec<MetricPoint>,
    events: Vec<TelemetryEvent>,
    timestamp_ms: u64,
) -> Vec<TelemetryPacket> {
    packets_from(SOURCE, prefix, metrics, events, timestamp_ms)
}

/// [`packets`] for any subsystem: `source` is each packet's `source_subsystem`
/// (Weatherlight packs its own metrics the same way).
pub fn packets_from(
    source: &str,
    prefix: &str,
    metrics: Vec<MetricPoint>,
    events: Vec<TelemetryEvent>,
    timestamp_ms: u64,
) -> Vec<TelemetryPacket> {
    let mut packets: Vec<TelemetryPacket> = Vec::new();
    let header = |n: usize| TelemetryPacket {
        packet_id: format!("{prefix}-{n}"),
        timestamp: Some(Timestamp::from_millis(timestamp_ms)),
        source_subsystem: source.to_owned(),
        level: TelemetryLevel::Info.into(),
        ..TelemetryPacket::default()
    };
    let mut current = header(0);
    for metric in metrics {
        let mut trial = current.clone();
        trial.metrics.push(metric.clone());
        if trial.encoded_len() > TELEMETRY_BYTE_LIMIT && !current.metrics.is_empty() {
            packets.push(std::mem::replace(&mut current, header(packets.len() + 1)));
            current.metrics.push(metric);
        } else {
            current = trial;
        }
    }
    for event in events {
        let mut trial = current.clone();
        trial.level = trial.level.max(event.level);
        trial.events.push(event.clone());
        if trial.encoded_len() > TELEMETRY_BYTE_LIMIT && !(current.metrics.is_empty() && current.events.is_empty()) {
            packets.push(std::mem::replace(&mut current, header(packets.len() + 1)));
            current.level = current.level.max(event.level);
            current.events.push(event);
        } else {
            current = trial;
        }
    }
    if !current.metrics.is_empty() || !current.events.is_empty() {
        packets.push(current);
    }
    debug_assert!(packets.iter().all(|p| p.encoded_len() <= TELEMETRY_BYTE_LIMIT));
    packets
}
