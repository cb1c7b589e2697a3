//! Kasmina's telemetry, split by Leyline's packet plan
//! ([`crate::leyline::budget`]): metrics then events, in as many numbered parts
//! of at most 280 bytes as they need — nothing is dropped to fit, because
//! per-seed metrics grow with the seeds.

use crate::leyline::{
    MessagePriority, MetricPoint, TelemetryBuilder, TelemetryEvent, TelemetryLevel, TelemetryPacket, Timestamp,
};

/// `source_subsystem` of every Kasmina packet.
pub const SOURCE: &str = "kasmina";

/// `metrics` then `events` as Kasmina packets with id `id` (`<id>-p<n>` when split).
pub fn packets(
    id: &str,
    metrics: Vec<MetricPoint>,
    events: Vec<TelemetryEvent>,
    timestamp_ms: u64,
) -> Vec<TelemetryPacket> {
    packets_from(SOURCE, id, metrics, events, timestamp_ms)
}

/// [`packets`] for any subsystem: `source` is each packet's `source_subsystem`
/// (Weatherlight packs its own metrics the same way). Only a single item too large
/// for a packet of its own could be refused, which Kasmina's and Weatherlight's
/// names cannot make (events cut attributes to 48 characters); it is logged.
pub fn packets_from(
    source: &str,
    id: &str,
    metrics: Vec<MetricPoint>,
    events: Vec<TelemetryEvent>,
    timestamp_ms: u64,
) -> Vec<TelemetryPacket> {
    let header = TelemetryPacket {
        packet_id: id.to_owned(),
        timestamp: Some(Timestamp::from_millis(timestamp_ms)),
        source_subsystem: source.to_owned(),
        level: TelemetryLevel::Info.into(),
        ..TelemetryPacket::default()
    };
    TelemetryBuilder::new(header).metrics(MessagePriority::Normal, metrics).events(events).build().unwrap_or_else(
        |error| {
            tracing::error!(%error, "kasmina.telemetry_refused");
            Vec::new()
        },
    )
}
