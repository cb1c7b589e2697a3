//! Tolaria's counters and the per-epoch telemetry packet built from them.

use crate::leyline::counters::leyline_counters;
use crate::leyline::{
    MessagePriority, MetricPoint, TelemetryBuilder, TelemetryEvent, TelemetryLevel, TelemetryPacket, TelemetryTooLarge,
    Timestamp,
};
use crate::planted::{Planted, PlantedBug};

leyline_counters! {
    /// Monotonic counters over the life of a trainer, named as Esper-Lite's
    /// metrics. Every one rides the epoch packet once it has moved.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct TolariaCounters {
        timeout_tamiyo_total => "tolaria.timeout.tamiyo_total",
        timeout_kasmina_total => "tolaria.timeout.kasmina_total",
        rollback_deadline_exceeded_total => "tolaria.rollback.deadline_exceeded_total",
        rollback_failures_total => "tolaria.rollback.failures_total",
        epochs_failed_total => "tolaria.epochs.failed",
        /// Tamiyo calls that answered in time.
        tamiyo_evaluations_total => "tolaria.tamiyo.evaluations_total",
        /// Tamiyo or Kasmina calls that failed outright (not by timeout).
        hook_errors_total => "tolaria.hook.errors_total",
        rollback_fast_hits_total => "tolaria.rollback.fast_hits_total",
        rollback_fast_misses_total => "tolaria.rollback.fast_misses_total",
        emergency_broadcasts_total => "tolaria.emergency.broadcasts_total",
        emergency_halts_total => "tolaria.emergency.halts_total",
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
    /// Tolaria's rollback deadline: the objective of `slo.rollback_restore_*`.
    pub rollback_deadline_ms: f64,
}

/// The end-of-epoch telemetry, split by the builder's packet plan: the KPIs and
/// the SLO pair first, then every counter that moved and the conservative-mode
/// flag (all never droppable), then the epoch's events. A calm epoch is one
/// packet; a rollback epoch several numbered parts.
pub fn epoch_packets(
    figures: &EpochFigures,
    counters: &TolariaCounters,
    events: Vec<TelemetryEvent>,
    now_ms: u64,
    planted: Planted,
) -> Result<Vec<TelemetryPacket>, TelemetryTooLarge> {
    let header = TelemetryPacket {
        packet_id: format!("tolaria-e{}", figures.epoch),
        timestamp: Some(Timestamp::from_millis(now_ms)),
        source_subsystem: "tolaria".to_owned(),
        level: TelemetryLevel::Info.into(),
        ..TelemetryPacket::default()
    };
    let metric = |name: &str, value: f64, unit: &str| MetricPoint::new(name, value, unit);
    let mut metrics = vec![
        (MessagePriority::Critical, metric("tolaria.training.loss", f64::from(figures.loss), "")),
        (MessagePriority::Critical, metric("tolaria.training.latency_ms", figures.latency_ms, "ms")),
        (MessagePriority::High, metric("slo.tolaria_latency_actual", figures.latency_ms, "ms")),
        (MessagePriority::High, metric("slo.tolaria_latency_objective", figures.latency_objective_ms, "ms")),
        (MessagePriority::Normal, metric("tolaria.seeds.active", figures.seeds_active as f64, "")),
        (MessagePriority::Low, metric("tolaria.train.graph_enabled", 0.0, "")),
    ];
    if figures.conservative {
        metrics.push((MessagePriority::High, metric("tolaria.mode.conservative", 1.0, "")));
    }
    // A rollback's duration is that epoch's KPI (the RC1 rollback scenario's), and
    // the only sample of it Nissa gets; against the deadline it is one sample of
    // the `rollback_restore` SLO.
    if let Some(restore_ms) = figures.restore_latency_ms {
        metrics.extend([
            (MessagePriority::Critical, metric("tolaria.rollback.restore_latency_ms", restore_ms, "ms")),
            (MessagePriority::High, metric("slo.rollback_restore_actual", restore_ms, "ms")),
            (MessagePriority::High, metric("slo.rollback_restore_objective", figures.rollback_deadline_ms, "ms")),
        ]);
    }
    let moved = counters.points().filter(|point| point.value > 0.0);
    if planted.armed(PlantedBug::TelemetrySentRaw) && counters.named().iter().take(5).any(|(_, value)| *value > 0) {
        // The planted bug: an epoch whose failure counters moved sends every
        // metric raw, however many bytes that makes, bypassing the builder's plan.
        let raw = metrics.into_iter().map(|(_, point)| point).chain(moved);
        return Ok(vec![TelemetryPacket { metrics: raw.collect(), events, ..header }]);
    }
    metrics
        .into_iter()
        .fold(TelemetryBuilder::new(header), |builder, (priority, point)| builder.metric(priority, point))
        .metrics(MessagePriority::High, moved)
        .events(events)
        .planted(planted)
        .build()
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
            rollback_deadline_ms: 250.0,
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
        let sent = |name| packets.iter().find_map(|packet| packet.metric(name));
        assert_eq!(sent("tolaria.rollback.restore_latency_ms"), Some(517.25));
        assert_eq!(sent("slo.rollback_restore_actual"), Some(517.25));
        assert_eq!(sent("slo.rollback_restore_objective"), Some(250.0));
        assert_eq!(sent("tolaria.mode.conservative"), Some(1.0));
        for (name, value) in counters.named().into_iter().filter(|(_, value)| *value > 0) {
            assert_eq!(sent(name), Some(value as f64), "{name} is never dropped");
        }
        let calm = EpochFigures { restore_latency_ms: None, ..figures };
        let packets = epoch_packets(&calm, &counters, Vec::new(), 0, Planted::NONE).expect("fits the budget");
        let sent = |name| packets.iter().find_map(|packet| packet.metric(name));
        assert_eq!(sent("tolaria.rollback.restore_latency_ms"), None, "no rollback, no sample");
        assert_eq!(sent("slo.rollback_restore_actual"), None, "no rollback, no SLO sample");
    }
}
