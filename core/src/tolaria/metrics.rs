//! Tolaria's counters and the per-epoch telemetry packet built from them.

use crate::leyline::{
    MessagePriority, MetricPoint, TelemetryBuilder, TelemetryEvent, TelemetryLevel, TelemetryPacket, TelemetryTooLarge,
    Timestamp, encode_within_budget,
};
use crate::planted::{Planted, PlantedBug};

/// Monotonic counters over the life of a trainer, named as Esper-Lite's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TolariaCounters {
    /// `tolaria.timeout.tamiyo_total`
    pub timeout_tamiyo_total: u64,
    /// `tolaria.timeout.kasmina_total`
    pub timeout_kasmina_total: u64,
    /// Tamiyo calls that answered in time.
    pub tamiyo_evaluations_total: u64,
    /// Tamiyo or Kasmina calls that failed outright (not by timeout).
    pub hook_errors_total: u64,
    /// `tolaria.epochs.failed`
    pub epochs_failed_total: u64,
    /// `tolaria.rollback.fast_hits_total`
    pub rollback_fast_hits_total: u64,
    /// `tolaria.rollback.fast_misses_total`
    pub rollback_fast_misses_total: u64,
    /// `tolaria.rollback.deadline_exceeded_total`
    pub rollback_deadline_exceeded_total: u64,
    /// `tolaria.rollback.failures_total`
    pub rollback_failures_total: u64,
    /// `tolaria.emergency.broadcasts_total`
    pub emergency_broadcasts_total: u64,
    /// `tolaria.emergency.halts_total`
    pub emergency_halts_total: u64,
}

impl TolariaCounters {
    /// Every counter with its Esper-Lite metric name, in a fixed order: the five
    /// failure signals the epoch packet carries first.
    pub fn named(&self) -> [(&'static str, u64); 11] {
        [
            ("tolaria.timeout.tamiyo_total", self.timeout_tamiyo_total),
            ("tolaria.timeout.kasmina_total", self.timeout_kasmina_total),
            ("tolaria.rollback.deadline_exceeded_total", self.rollback_deadline_exceeded_total),
            ("tolaria.rollback.failures_total", self.rollback_failures_total),
            ("tolaria.epochs.failed", self.epochs_failed_total),
            ("tolaria.tamiyo.evaluations_total", self.tamiyo_evaluations_total),
            ("tolaria.hook.errors_total", self.hook_errors_total),
            ("tolaria.rollback.fast_hits_total", self.rollback_fast_hits_total),
            ("tolaria.rollback.fast_misses_total", self.rollback_fast_misses_total),
            ("tolaria.emergency.broadcasts_total", self.emergency_broadcasts_total),
            ("tolaria.emergency.halts_total", self.emergency_halts_total),
        ]
    }
}

/// What one epoch measured, for the telemetry packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochFigures {
    pub epoch: u32,
    pub loss: f32,
    pub latency_ms: f64,
    pub seeds_active: usize,
    pub conservative: bool,
    pub latency_objective_ms: f64,
    /// How long this epoch's rollback took (`tolaria.rollback.restore_latency_ms`),
    /// if it rolled back: the sample Nissa's `tolaria_rollback_restore_slow` watches.
    pub restore_latency_ms: Option<f64>,
}

/// The end-of-epoch telemetry. The first packet carries the KPIs (at high priority)
/// and counters that moved (at low priority, the first to go if the budget is tight);
/// the epoch's events follow in as many further packets as the 280-byte budget needs.
/// Esper-Lite sent one packet with both; at 280 bytes they do not fit together.
pub fn epoch_packets(
    figures: &EpochFigures,
    counters: &TolariaCounters,
    events: Vec<TelemetryEvent>,
    now_ms: u64,
    planted: Planted,
) -> Result<Vec<TelemetryPacket>, TelemetryTooLarge> {
    let header = |suffix: String, level: TelemetryLevel| TelemetryPacket {
        packet_id: format!("tolaria-e{}{suffix}", figures.epoch),
        timestamp: Some(Timestamp::from_millis(now_ms)),
        source_subsystem: "tolaria".to_owned(),
        level: level.into(),
        ..TelemetryPacket::default()
    };
    let mut packets = vec![kpi_packet(header(String::new(), TelemetryLevel::Info), figures, counters, planted)?];
    let mut pending: Option<TelemetryPacket> = None;
    for event in events {
        if let Some(packet) = pending.as_mut() {
            packet.events.push(event.clone());
            if encode_within_budget(packet).is_ok() {
                packet.level = packet.level.max(event.level);
                continue;
            }
            packet.events.pop();
            packets.extend(pending.take());
        }
        let level = TelemetryLevel::try_from(event.level).unwrap_or(TelemetryLevel::Info);
        let mut packet = header(format!("-ev{}", packets.len()), level);
        packet.events.push(event);
        encode_within_budget(&packet)?;
        pending = Some(packet);
    }
    packets.extend(pending);
    Ok(packets)
}

fn kpi_packet(
    header: TelemetryPacket,
    figures: &EpochFigures,
    counters: &TolariaCounters,
    planted: Planted,
) -> Result<TelemetryPacket, TelemetryTooLarge> {
    let metric = |name: &str, value: f64, unit: &str| MetricPoint::new(name, value, unit);
    let mut metrics = vec![
        (MessagePriority::Critical, metric("tolaria.training.loss", f64::from(figures.loss), "")),
        (MessagePriority::Critical, metric("tolaria.training.latency_ms", figures.latency_ms, "ms")),
        (MessagePriority::Normal, metric("tolaria.seeds.active", figures.seeds_active as f64, "")),
        (MessagePriority::Normal, metric("tolaria.train.graph_enabled", 0.0, "")),
        (MessagePriority::High, metric("slo.tolaria_latency_actual", figures.latency_ms, "ms")),
        (MessagePriority::High, metric("slo.tolaria_latency_objective", figures.latency_objective_ms, "ms")),
    ];
    if figures.conservative {
        metrics.push((MessagePriority::Normal, metric("tolaria.mode.conservative", 1.0, "")));
    }
    // A rollback's duration is that epoch's KPI (the RC1 rollback scenario's), and
    // the only sample of it Nissa gets: it must not be the one the budget drops.
    if let Some(restore_ms) = figures.restore_latency_ms {
        metrics.push((MessagePriority::Critical, metric("tolaria.rollback.restore_latency_ms", restore_ms, "ms")));
    }
    metrics
        .extend(moved_counters(counters).map(|(name, value)| (MessagePriority::Low, metric(name, value as f64, ""))));
    if planted.armed(PlantedBug::TelemetrySentRaw) && moved_counters(counters).next().is_some() {
        // The planted bug: an epoch whose failure counters moved sends every
        // metric raw, however many bytes that makes, bypassing the builder's cap.
        return Ok(TelemetryPacket { metrics: metrics.into_iter().map(|(_, point)| point).collect(), ..header });
    }
    metrics
        .into_iter()
        .fold(TelemetryBuilder::new(header), |builder, (priority, point)| builder.metric(priority, point))
        .build()
}

/// The counters the epoch packet carries (the failure signals), those that moved.
fn moved_counters(c: &TolariaCounters) -> impl Iterator<Item = (&'static str, u64)> {
    let [carried @ .., _, _, _, _, _, _] = c.named();
    carried.into_iter().filter(|&(_, value)| value > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_epoch_reports_its_restore_latency_even_with_every_failure_counter_moved() {
        let figures = EpochFigures {
            epoch: 1_234,
            loss: 0.75,
            latency_ms: 612.5,
            seeds_active: 3,
            conservative: true,
            latency_objective_ms: 250.0,
            restore_latency_ms: Some(517.25),
        };
        let counters = TolariaCounters {
            timeout_tamiyo_total: 1_000,
            timeout_kasmina_total: 1_000,
            rollback_deadline_exceeded_total: 1_000,
            rollback_failures_total: 1_000,
            epochs_failed_total: 1_000,
            ..TolariaCounters::default()
        };
        let packets = epoch_packets(&figures, &counters, Vec::new(), 0, Planted::NONE).expect("fits the budget");
        assert_eq!(packets[0].metric("tolaria.rollback.restore_latency_ms"), Some(517.25));
        let calm = EpochFigures { restore_latency_ms: None, ..figures };
        let packets = epoch_packets(&calm, &counters, Vec::new(), 0, Planted::NONE).expect("fits the budget");
        assert_eq!(packets[0].metric("tolaria.rollback.restore_latency_ms"), None, "no rollback, no sample");
    }
}
