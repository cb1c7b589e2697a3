//! Turning bus messages into metrics, alert evaluations, SLO samples and documents.
//!
//! * Telemetry: `esper_telemetry_packets_total{source}`, and
//!   `esper_telemetry_parts_missing_total{source}` for parts of split telemetry
//!   that never came (see `parts`); every finite metric point
//!   exported (see `naming`; allow-listed attributes as labels, see `exporter`)
//!   and evaluated by the alert rules; `slo.*` pairs
//!   recorded; a packet from `simic` carrying `simic.training.reward` is one Simic
//!   training iteration with that reward.
//! * System state: `esper_system_state_packets_total{phase}`, where the phase is
//!   the furthest lifecycle stage (by wire number) among the packet's seeds, or
//!   `none`; its `training_metrics` are exported and evaluated like telemetry
//!   (keys without a dot are prefixed with the sender, `tolaria.hook_latency_ms`).
//! * Field reports: `esper_field_reports_total{outcome}`.
//!
//! A message whose payload does not decode is rejected: counted in
//! `esper_ingest_rejected_total{reason}` and dead-lettered by Oona at once.
//! Other message types are acked and left alone.

use std::collections::BTreeMap;

use super::exporter::REJECTED_MESSAGE_REASONS;
use super::index::{Document, IndexName};
use super::slo;
use super::state::{Nissa, State};
use crate::leyline::{
    BusMessageType, Contract, FieldReport, FieldReportOutcome, SeedLifecycleStage, SystemStatePacket, TelemetryPacket,
};
use crate::oona::{Delivery, Handled};

/// The Simic metric that marks one training iteration and carries its reward.
pub const SIMIC_REWARD_METRIC: &str = "simic.training.reward";
/// The `source_subsystem` of Simic's packets.
pub const SIMIC_SOURCE: &str = "simic";

impl Nissa {
    /// Handles one delivery from the bus.
    pub fn ingest(&self, delivery: &Delivery<'_>) -> Handled {
        let envelope = delivery.envelope;
        let outcome = match envelope.message_type() {
            BusMessageType::Telemetry => {
                envelope.open::<TelemetryPacket>().map(|packet| self.ingest_telemetry(&packet))
            }
            BusMessageType::SystemState => {
                envelope.open::<SystemStatePacket>().map(|packet| self.ingest_state(&packet))
            }
            BusMessageType::FieldReport => envelope.open::<FieldReport>().map(|report| self.ingest_report(&report)),
            _ => {
                self.lock().counts.ignored += 1;
                return Handled::Done;
            }
        };
        match outcome {
            Ok(()) => Handled::Done,
            Err(error) => {
                let [telemetry, system_state, field_report] = REJECTED_MESSAGE_REASONS;
                let reason = match envelope.message_type() {
                    BusMessageType::Telemetry => telemetry,
                    BusMessageType::SystemState => system_state,
                    _ => field_report,
                };
                let mut state = self.lock();
                state.counts.rejected += 1;
                state.exporter.rejected_messages.with_label_values(&[reason]).inc();
                Handled::Reject(format!("{reason}: {error}"))
            }
        }
    }

    /// Ingests one telemetry packet.
    pub fn ingest_telemetry(&self, packet: &TelemetryPacket) {
        let now_ms = self.now_ms();
        let mut state = self.lock();
        let source = state.exporter.source_label(&packet.source_subsystem);
        state.exporter.telemetry_packets.with_label_values(&[source.as_str()]).inc();
        let missing = state.parts.note(&source, packet);
        // Created at zero with the source's first packet, so a loss shows as a rise.
        state.exporter.telemetry_parts_missing.with_label_values(&[source.as_str()]).inc_by(missing);
        for metric in &packet.metrics {
            state.sample(&metric.name, &source, &metric.attributes, metric.value, now_ms);
            if packet.source_subsystem == SIMIC_SOURCE && metric.name == SIMIC_REWARD_METRIC && metric.value.is_finite()
            {
                state.exporter.add_simic_reward(metric.value);
                state.exporter.simic_iterations.inc();
            }
        }
        for sample in slo::samples(packet) {
            if state.slo.record(&sample, now_ms) {
                state.exporter.slo_samples.with_label_values(&[sample.name.as_str()]).inc();
                // Created at zero on the first sample, so the ratio exists before a violation.
                let violations = state.exporter.slo_violations.with_label_values(&[sample.name.as_str()]);
                violations.inc_by(u64::from(sample.violated()));
            }
        }
        state.counts.telemetry_packets += 1;
        state.document(IndexName::Telemetry, &packet.packet_id, packet, now_ms);
    }

    /// Ingests one system state packet.
    pub fn ingest_state(&self, packet: &SystemStatePacket) {
        let now_ms = self.now_ms();
        let mut state = self.lock();
        let phase = phase(packet);
        state.exporter.system_state_packets.with_label_values(&[phase.as_str()]).inc();
        let source = state.exporter.source_label(&packet.source_subsystem);
        for (key, value) in &packet.training_metrics {
            let name = if key.contains('.') { key.clone() } else { format!("{}.{key}", packet.source_subsystem) };
            state.sample(&name, &source, &BTreeMap::new(), f64::from(*value), now_ms);
        }
        state.counts.system_state_packets += 1;
        state.document(IndexName::SystemState, &packet.packet_id, packet, now_ms);
    }

    /// Ingests one field report.
    pub fn ingest_report(&self, report: &FieldReport) {
        let now_ms = self.now_ms();
        let mut state = self.lock();
        let outcome = enum_label(FieldReportOutcome::try_from(report.outcome).map(FieldReportOutcome::as_str_name));
        state.exporter.field_reports.with_label_values(&[outcome.as_str()]).inc();
        state.counts.field_reports += 1;
        state.document(IndexName::FieldReport, &report.report_id, report, now_ms);
    }
}

impl State {
    /// One metric point: exported (a non-finite value is refused and counted
    /// there) and, when finite, evaluated by the alert rules — also when the
    /// exporter refused its name, since the rules do not depend on exporting.
    fn sample(&mut self, name: &str, source: &str, attributes: &BTreeMap<String, String>, value: f64, now_ms: u64) {
        let _exported_or_counted = self.exporter.observe(name, source, attributes, value);
        if value.is_finite() {
            self.evaluate(name, value, now_ms);
        }
    }

    /// Queues `message` for the index.
    fn document<M: Contract + serde::Serialize>(&mut self, index: IndexName, id: &str, message: &M, now_ms: u64) {
        self.counts.last_ingest_ms = Some(now_ms);
        match serde_json::to_value(message) {
            Ok(body) => self.documents.push(Document { index, id: id.to_owned(), body }),
            Err(error) => {
                tracing::warn!(%error, index = index.as_str(), "nissa: message has no JSON form; not indexed")
            }
        }
    }
}

/// The furthest lifecycle stage among the packet's seeds, as a label.
fn phase(packet: &SystemStatePacket) -> String {
    let stages = packet
        .seed_states
        .iter()
        .filter_map(|seed| SeedLifecycleStage::try_from(seed.stage).ok().map(|stage| (seed.stage, stage)));
    stages
        .max_by_key(|(wire, _)| *wire)
        .map_or_else(|| "none".to_owned(), |(_, stage)| enum_label(Ok::<_, ()>(stage.as_str_name())))
}

/// `SEED_STAGE_TRAINING` → `training`, `FIELD_REPORT_OUTCOME_SUCCESS` → `success`.
fn enum_label<E>(name: Result<&str, E>) -> String {
    let Ok(name) = name else { return "unknown".to_owned() };
    let short =
        ["SEED_STAGE_", "FIELD_REPORT_OUTCOME_"].iter().find_map(|prefix| name.strip_prefix(prefix)).unwrap_or(name);
    short.to_ascii_lowercase()
}
