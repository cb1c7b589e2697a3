//! The 280-byte telemetry budget, and the packet plan that keeps to it.
//!
//! Esper-Lite's design promised telemetry packets under 280 encoded bytes so that a
//! packet always fits one small Redis stream entry and one network frame; the original
//! only asserted it in tests. Esper enforces it at the producer:
//! [`encode_within_budget`] refuses an oversized packet with the size and the limit.
//!
//! An epoch's telemetry does not fit 280 bytes once things go wrong: a rollback
//! epoch carries its KPIs, every failure counter that moved and a dozen timeout
//! events. Dropping metrics to fit one packet would hide exactly what an operator
//! needs in that epoch, so [`TelemetryBuilder`] *splits* instead. The packet plan:
//!
//! 1. Metrics go first, highest priority first (insertion order within a
//!    priority), then events in the order they were raised. They are packed
//!    greedily into parts of at most [`TELEMETRY_BYTE_LIMIT`] encoded bytes.
//! 2. When there is more than one part, every part carries `part` (1-based) and
//!    `parts` (how many), and its id is `<id>-p<part>`, so a consumer can tell a
//!    part is missing. A single part keeps the id and leaves both at 0.
//! 3. Only [`DROPPABLE`] metrics (`Low` priority: debug figures Nissa can do
//!    without) may be dropped, and only when the telemetry would need more than
//!    [`MAX_PARTS`] parts: the latest added first, counted in a WARNING event
//!    [`METRICS_DROPPED_EVENT`]. Failure, safety and SLO metrics (timeouts,
//!    rollback, deadline, emergency, breaker, conservative mode) and counters are
//!    `Normal` or above and are never dropped; neither are events.
//!    Past [`MAX_PARTS`] with nothing droppable left, the rest still goes out in
//!    more parts: what matters is never traded for a tidier packet count.
//! 4. An event too large for a part of its own goes without its attributes; a
//!    metric too large for one is refused with [`TelemetryTooLarge`], as is
//!    telemetry so large that it would need more than 9 999 parts.

use prost::Message;

use super::{MessagePriority, MetricPoint, TelemetryEvent, TelemetryLevel, TelemetryPacket};
use crate::planted::{Planted, PlantedBug};

/// Largest encoded `TelemetryPacket` a producer may emit.
pub const TELEMETRY_BYTE_LIMIT: usize = 280;

/// Parts past which [`TelemetryBuilder`] drops droppable metrics. What may not be
/// dropped still goes out, in more parts: its producers bound it (Tolaria's events
/// by the steps of an epoch, Kasmina's by its pending-event cap).
pub const MAX_PARTS: u32 = 16;

/// Parts no telemetry may exceed: sizes are measured with this part number and
/// its id suffix, so numbering can only shrink a part. Past it the builder refuses.
const PARTS_LIMIT: u32 = 9_999;

/// The one priority whose metrics the builder may drop (see the module docs).
pub const DROPPABLE: MessagePriority = MessagePriority::Low;

/// Name (the event's `description`, as every Leyline event) of the note
/// [`TelemetryBuilder`] adds when it had to drop metrics.
pub const METRICS_DROPPED_EVENT: &str = "telemetry.metrics_dropped";

/// An encoded telemetry packet over [`TELEMETRY_BYTE_LIMIT`], or telemetry that
/// needs more than 9 999 parts (then `size` is the bytes of all of them and
/// `limit` what that many parts may hold).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "telemetry packet `{packet_id}` from `{source_subsystem}` encodes to {size} bytes, over the {limit}-byte limit{}",
    if *.critical_kept { " (even after dropping every droppable metric)" } else { "" }
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
        return Err(too_large(packet, size, TELEMETRY_BYTE_LIMIT));
    }
    Ok(packet.encode_to_vec())
}

fn too_large(packet: &TelemetryPacket, size: usize, limit: usize) -> TelemetryTooLarge {
    TelemetryTooLarge {
        packet_id: packet.packet_id.clone(),
        source_subsystem: packet.source_subsystem.clone(),
        size,
        limit,
        critical_kept: limit > TELEMETRY_BYTE_LIMIT,
    }
}

/// Builds an epoch's (or a step's) telemetry as packets that each fit the budget,
/// following the packet plan in the module docs.
#[derive(Debug, Clone)]
pub struct TelemetryBuilder {
    header: TelemetryPacket,
    metrics: Vec<(MessagePriority, MetricPoint)>,
    planted: Planted,
}

impl TelemetryBuilder {
    /// Starts from `header` (id, timestamp, source, level, events, health); any metrics
    /// already in it are kept at `Normal` priority.
    pub fn new(mut header: TelemetryPacket) -> Self {
        let metrics = std::mem::take(&mut header.metrics).into_iter().map(|m| (MessagePriority::Normal, m)).collect();
        Self { header, metrics, planted: Planted::NONE }
    }

    /// Adds a metric at `priority`.
    pub fn metric(mut self, priority: MessagePriority, metric: MetricPoint) -> Self {
        self.metrics.push((priority, metric));
        self
    }

    /// Adds metrics, all at `priority`.
    pub fn metrics(mut self, priority: MessagePriority, metrics: impl IntoIterator<Item = MetricPoint>) -> Self {
        self.metrics.extend(metrics.into_iter().map(|metric| (priority, metric)));
        self
    }

    /// Adds an event; events are never dropped.
    pub fn event(mut self, event: TelemetryEvent) -> Self {
        self.header.events.push(event);
        self
    }

    /// Adds events, in order.
    pub fn events(mut self, events: impl IntoIterator<Item = TelemetryEvent>) -> Self {
        self.header.events.extend(events);
        self
    }

    /// Arms the run's planted bug, if it is the builder's (TEST ONLY).
    pub fn planted(mut self, planted: Planted) -> Self {
        self.planted = planted;
        self
    }

    /// The packets, per the packet plan: one when everything fits, else up to
    /// [`MAX_PARTS`] numbered parts.
    pub fn build(self) -> Result<Vec<TelemetryPacket>, TelemetryTooLarge> {
        let mut ordered = self.metrics;
        // Stable sort: highest priority first, insertion order within a priority,
        // so the droppable metrics are the tail, latest added last.
        ordered.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));
        let droppable = ordered.iter().rev().take_while(|(priority, _)| *priority == DROPPABLE).count();
        let mut events = self.header.events.clone();
        let mut dropped = 0;
        loop {
            let kept = ordered.iter().take(ordered.len() - dropped).map(|(_, metric)| metric);
            let parts = pack(&self.header, kept, &events, self.planted)?;
            if parts.len() <= MAX_PARTS as usize || dropped == droppable {
                return number(parts, &self.header);
            }
            dropped += 1;
            events.truncate(self.header.events.len());
            events.push(dropped_note(dropped));
        }
    }
}

/// The note that `count` droppable metrics were left out. A count, not names:
/// it has to fit beside the metrics it replaces.
fn dropped_note(count: usize) -> TelemetryEvent {
    TelemetryEvent {
        description: METRICS_DROPPED_EVENT.to_owned(),
        level: TelemetryLevel::Warning.into(),
        attributes: [("count".to_owned(), count.to_string()), ("priority".to_owned(), format!("{DROPPABLE:?}"))].into(),
        ..TelemetryEvent::default()
    }
}

/// One thing to place in a part.
enum Item<'a> {
    Metric(&'a MetricPoint),
    Event(&'a TelemetryEvent),
}

impl Item<'_> {
    fn push_into(&self, packet: &mut TelemetryPacket) {
        match self {
            Self::Metric(metric) => packet.metrics.push((*metric).clone()),
            Self::Event(event) => {
                packet.level = packet.level.max(event.level);
                packet.events.push((*event).clone());
            }
        }
    }
}

/// Packs `metrics` then `events` greedily into parts of at most
/// [`TELEMETRY_BYTE_LIMIT`] bytes. Sizes are measured with the longest id suffix
/// and part numbers the plan can give (`-p9999`, 9 999 of 9 999), so numbering the
/// parts afterwards can only shrink them.
fn pack<'a>(
    header: &TelemetryPacket,
    metrics: impl Iterator<Item = &'a MetricPoint>,
    events: &'a [TelemetryEvent],
    planted: Planted,
) -> Result<Vec<TelemetryPacket>, TelemetryTooLarge> {
    let template = TelemetryPacket {
        packet_id: format!("{}-p{PARTS_LIMIT}", header.packet_id),
        part: PARTS_LIMIT,
        parts: PARTS_LIMIT,
        metrics: Vec::new(),
        events: Vec::new(),
        ..header.clone()
    };
    let mut parts = Vec::new();
    let mut current = template.clone();
    for item in metrics.map(Item::Metric).chain(events.iter().map(Item::Event)) {
        let mut trial = current.clone();
        item.push_into(&mut trial);
        if trial.encoded_len() <= TELEMETRY_BYTE_LIMIT {
            current = trial;
            continue;
        }
        let mut alone = template.clone();
        item.push_into(&mut alone);
        if alone.encoded_len() > TELEMETRY_BYTE_LIMIT {
            strip_attributes(&mut alone);
        }
        let size = alone.encoded_len();
        if size > TELEMETRY_BYTE_LIMIT {
            return Err(too_large(&alone, size, TELEMETRY_BYTE_LIMIT));
        }
        if planted.armed(PlantedBug::SplitLosesMetric) && matches!(item, Item::Metric(_)) {
            // The planted bug: the metric that overflowed a part opens the next
            // one but is never written into it.
            alone.metrics.clear();
        }
        if is_empty(&current) {
            current = alone;
        } else {
            parts.push(std::mem::replace(&mut current, alone));
        }
    }
    parts.push(current);
    debug_assert!(parts.iter().all(|part| part.encoded_len() <= TELEMETRY_BYTE_LIMIT));
    Ok(parts)
}

fn is_empty(packet: &TelemetryPacket) -> bool {
    packet.metrics.is_empty() && packet.events.is_empty()
}

/// An event too large for a part of its own goes without its attributes.
fn strip_attributes(packet: &mut TelemetryPacket) {
    for event in &mut packet.events {
        event.attributes.clear();
    }
}

/// Final ids and part numbers: a lone part is the packet itself.
fn number(
    mut parts: Vec<TelemetryPacket>,
    header: &TelemetryPacket,
) -> Result<Vec<TelemetryPacket>, TelemetryTooLarge> {
    let count = u32::try_from(parts.len()).ok().filter(|count| *count <= PARTS_LIMIT).ok_or_else(|| {
        let size = parts.iter().map(Message::encoded_len).sum();
        too_large(header, size, PARTS_LIMIT as usize * TELEMETRY_BYTE_LIMIT)
    })?;
    for (number, part) in (1..).zip(parts.iter_mut()) {
        if count == 1 {
            (part.packet_id, part.part, part.parts) = (header.packet_id.clone(), 0, 0);
        } else {
            (part.packet_id, part.part, part.parts) = (format!("{}-p{number}", header.packet_id), number, count);
        }
        debug_assert!(part.encoded_len() <= TELEMETRY_BYTE_LIMIT);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leyline::Timestamp;

    fn header(id: &str) -> TelemetryPacket {
        TelemetryPacket {
            packet_id: id.into(),
            timestamp: Some(Timestamp::from_millis(1_767_225_600_123)),
            source_subsystem: "tolaria".into(),
            level: TelemetryLevel::Info.into(),
            ..TelemetryPacket::default()
        }
    }

    /// Tolaria's end-of-epoch KPIs on a calm epoch.
    fn tolaria_epoch_packet() -> TelemetryBuilder {
        TelemetryBuilder::new(header("tolaria-e3"))
            .metric(MessagePriority::High, MetricPoint::new("tolaria.training.loss", 0.6875, ""))
            .metric(MessagePriority::High, MetricPoint::new("tolaria.training.latency_ms", 4.35, "ms"))
            .metric(MessagePriority::Normal, MetricPoint::new("tolaria.seeds.active", 1.0, ""))
            .metric(MessagePriority::Low, MetricPoint::new("tolaria.train.graph_enabled", 0.0, ""))
            .metric(MessagePriority::Normal, MetricPoint::new("slo.tolaria_latency_actual", 4.35, "ms"))
            .metric(MessagePriority::Normal, MetricPoint::new("slo.tolaria_latency_objective", 18.0, "ms"))
    }

    fn names(packets: &[TelemetryPacket]) -> Vec<&str> {
        packets.iter().flat_map(|p| &p.metrics).map(|m| m.name.as_str()).collect()
    }

    fn assert_within_budget(packets: &[TelemetryPacket]) {
        for packet in packets {
            assert!(
                packet.encoded_len() <= TELEMETRY_BYTE_LIMIT,
                "{}: {} bytes",
                packet.packet_id,
                packet.encoded_len()
            );
        }
    }

    #[test]
    fn a_calm_epoch_is_one_unnumbered_packet() {
        let packets = tolaria_epoch_packet().build().expect("fits");
        assert_eq!(packets.len(), 1);
        let packet = &packets[0];
        assert_eq!((packet.packet_id.as_str(), packet.part, packet.parts), ("tolaria-e3", 0, 0));
        assert_eq!(packet.metrics.len(), 6, "nothing should be dropped");
        assert!(packet.events.is_empty());
        encode_within_budget(packet).expect("within budget");
    }

    #[test]
    fn oversized_packet_is_refused_with_size_and_limit() {
        let mut packet = tolaria_epoch_packet().build().expect("fits").remove(0);
        for i in 0..8 {
            packet.metrics.push(MetricPoint::new(format!("tolaria.extra.metric_{i}"), f64::from(i), "ms"));
        }
        let size = packet.encoded_len();
        let err = encode_within_budget(&packet).expect_err("oversized");
        assert_eq!(err.size, size);
        assert_eq!(err.limit, 280);
        assert!(err.to_string().contains(&format!("{size} bytes, over the 280-byte limit")), "{err}");
    }

    /// The RC1 rollback epoch: KPIs, every failure counter and a dozen timeout
    /// events. Splitting keeps all of it, in numbered parts, metrics by priority first.
    #[test]
    fn a_failing_epoch_is_split_into_numbered_parts_and_nothing_is_dropped() {
        let mut builder = tolaria_epoch_packet();
        let counters = ["timeout.tamiyo_total", "timeout.kasmina_total", "rollback.deadline_exceeded_total"];
        for (i, counter) in counters.iter().enumerate() {
            builder =
                builder.metric(MessagePriority::High, MetricPoint::new(format!("tolaria.{counter}"), i as f64, ""));
        }
        let timeout = TelemetryEvent::named("tolaria.kasmina_timeout", TelemetryLevel::Warning, &[]);
        let packets = builder.events(vec![timeout; 16]).build().expect("splits");
        assert!(packets.len() > 2, "{} parts", packets.len());
        assert_within_budget(&packets);
        for (index, packet) in packets.iter().enumerate() {
            let number = index as u32 + 1;
            assert_eq!((packet.part, packet.parts), (number, packets.len() as u32));
            assert_eq!(packet.packet_id, format!("tolaria-e3-p{number}"));
        }
        let sent = names(&packets);
        assert_eq!(sent.len(), 9, "every metric: {sent:?}");
        assert_eq!(sent.last(), Some(&"tolaria.train.graph_enabled"), "the low-priority metric goes last");
        assert_eq!(packets.iter().map(|p| p.events.len()).sum::<usize>(), 16, "every event");
        assert!(packets.iter().flat_map(|p| &p.events).all(|e| e.description != METRICS_DROPPED_EVENT));
        assert_eq!(packets.last().map(TelemetryPacket::priority), Some(MessagePriority::High));
    }

    #[test]
    fn only_droppable_metrics_go_and_only_past_the_part_limit_counted() {
        let mut builder = tolaria_epoch_packet();
        for i in 0..200 {
            builder = builder.metric(DROPPABLE, MetricPoint::new(format!("tolaria.debug.m{i}"), 1.0, ""));
        }
        let packets = builder.build().expect("fits after dropping");
        assert_eq!(packets.len(), MAX_PARTS as usize);
        assert_within_budget(&packets);
        let sent = names(&packets);
        for kept in ["tolaria.training.loss", "tolaria.training.latency_ms", "slo.tolaria_latency_objective"] {
            assert!(sent.contains(&kept), "{kept} is never dropped");
        }
        assert!(sent.contains(&"tolaria.debug.m0") && !sent.contains(&"tolaria.debug.m199"), "latest dropped first");
        let event = packets.iter().flat_map(|p| &p.events).find(|e| e.description == METRICS_DROPPED_EVENT);
        let dropped: usize = event.expect("drop event").attributes["count"].parse().expect("a count");
        assert_eq!(dropped, 206 - sent.len(), "the event counts exactly what is missing");
    }

    #[test]
    fn undroppable_metrics_past_the_part_target_still_all_go_out() {
        let mut builder = TelemetryBuilder::new(header("p")).metric(DROPPABLE, MetricPoint::new("debug.m", 1.0, ""));
        for i in 0..400 {
            builder =
                builder.metric(MessagePriority::Normal, MetricPoint::new(format!("counter.metric.{i}"), 1.0, "ms"));
        }
        let packets = builder.build().expect("what matters is never refused for its packet count");
        assert!(packets.len() > MAX_PARTS as usize, "{} parts", packets.len());
        assert_within_budget(&packets);
        let sent = names(&packets);
        assert_eq!(sent.len(), 400, "every undroppable metric, the droppable one dropped");
        assert!(!sent.contains(&"debug.m"));
        let notes = packets.iter().flat_map(|p| &p.events).filter(|e| e.description == METRICS_DROPPED_EVENT);
        assert_eq!(notes.map(|e| e.attributes["count"].as_str()).collect::<Vec<_>>(), ["1"]);
    }

    #[test]
    fn an_event_too_large_for_a_part_goes_without_attributes() {
        let long = "x".repeat(400);
        let event = TelemetryEvent {
            description: "timeout_urza".to_owned(),
            level: TelemetryLevel::Critical.into(),
            attributes: [("blueprint".to_owned(), long)].into(),
            ..TelemetryEvent::default()
        };
        let packets = tolaria_epoch_packet().event(event).build().expect("fits");
        assert_within_budget(&packets);
        let last = packets.last().expect("a part");
        assert_eq!(last.events[0].description, "timeout_urza");
        assert!(last.events[0].attributes.is_empty());
        assert_eq!(last.priority(), MessagePriority::Critical);
    }
}
