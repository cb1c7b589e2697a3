//! The end of an epoch: did it fail, and what follows (breaker, conservative mode,
//! emergency ladder, checkpoint, telemetry).

use tokio::time::Instant;

use super::metrics::{EpochFigures, epoch_packets};
use super::ports::{KasminaPort, Ports, TelemetryPort};
use super::trainer::{EpochClose, EpochFailure, EpochReport, StepTally, TolariaError, Trainer};
use crate::leyline::{EmergencyLevel, TelemetryEvent, TelemetryLevel};
use crate::oona::snapshot_packets;

impl<P: Ports> Trainer<P> {
    pub(super) async fn close_epoch(&mut self, close: EpochClose) -> Result<EpochReport, TolariaError> {
        let failure = self.failure_of(close.latency_ms, &close.tally);
        let restore_latency_ms = match failure {
            Some(failure) => self.epoch_failed(failure, &close.tally).await,
            None => {
                self.epoch_succeeded();
                None
            }
        };
        self.checkpoint().await;
        let figures = EpochFigures {
            epoch: self.epoch,
            loss: close.loss,
            latency_ms: close.latency_ms,
            seeds_active: self.peers.kasmina.seed_states().len(),
            conservative: self.conservative,
            latency_objective_ms: self.config.latency_objective_ms,
            restore_latency_ms,
            rollback_deadline_ms: self.config.rollback_deadline.as_secs_f64() * 1_000.0,
        };
        let events = std::mem::take(&mut self.events);
        let telemetry = epoch_packets(&figures, &self.counters, events, self.clock.now_ms(), self.config.planted)
            .unwrap_or_else(|too_large| vec![self.refused_packet(&too_large.to_string())]);
        for packet in &telemetry {
            if let Err(error) = self.peers.telemetry.publish_telemetry(packet).await {
                tracing::warn!(epoch = self.epoch, %error, "tolaria.telemetry_failed");
            }
        }
        self.publish_bus_snapshot().await;
        tracing::info!(
            epoch = self.epoch,
            loss = close.loss,
            latency_ms = close.latency_ms,
            failure = failure.map(EpochFailure::reason),
            "tolaria.epoch"
        );
        Ok(EpochReport {
            epoch: self.epoch,
            loss: close.loss,
            accuracy: close.accuracy,
            latency_ms: close.latency_ms,
            steps: close.tally.steps,
            failure,
            conservative: self.conservative,
            halted: self.emergency.halted(),
            telemetry,
        })
    }

    /// Esper-Lite's priority: breaker open, then epoch budget, then a step failure,
    /// then the hook budget.
    fn failure_of(&mut self, latency_ms: f64, tally: &StepTally) -> Option<EpochFailure> {
        let budget_ms = self.config.epoch_budget.as_secs_f64() * 1_000.0;
        let hook_budget_ms = self.config.hook_budget.as_secs_f64() * 1_000.0;
        if !self.breaker.allow(Instant::now()) {
            Some(EpochFailure::BreakerOpen)
        } else if latency_ms > budget_ms {
            Some(EpochFailure::EpochBudget)
        } else if tally.first_failure.is_some() {
            Some(EpochFailure::StepFailure)
        } else if tally.hook_max_ms > hook_budget_ms {
            Some(EpochFailure::HookBudget)
        } else {
            None
        }
    }

    /// Counts the failure, escalates, and rolls back; returns how long the
    /// rollback took, if one ran.
    async fn epoch_failed(&mut self, failure: EpochFailure, tally: &StepTally) -> Option<f64> {
        self.counters.epochs_failed_total += 1;
        self.failed_streak += 1;
        self.breaker.record_failure(Instant::now());
        self.conservative = true;
        let mut attributes = vec![("reason", failure.reason().to_owned())];
        if let Some(detail) = &tally.first_failure {
            attributes.push(("detail", detail.clone()));
        }
        self.events.push(TelemetryEvent::named("tolaria.epoch_failed", TelemetryLevel::Warning, &attributes));
        if self.config.emergency_enabled {
            let level = if failure == EpochFailure::BreakerOpen {
                EmergencyLevel::Conservative
            } else {
                EmergencyLevel::Elevated
            };
            self.escalate(level, failure.reason()).await;
            if self.failed_streak >= self.config.l4_failed_epochs {
                self.escalate(EmergencyLevel::Halt, "failed_epochs").await;
            }
        }
        if !self.config.rollback_enabled || self.emergency.halted() {
            return None;
        }
        self.rollback_to(tally.start_step).await;
        Some(self.last_restore_latency_ms)
    }

    fn epoch_succeeded(&mut self) {
        self.breaker.record_success();
        self.conservative = false;
        self.failed_streak = 0;
        self.emergency.reset();
    }

    /// Raises the emergency level (events `tolaria.emergency.escalated`, and
    /// `tolaria.emergency.halt` at L4) and broadcasts the signal.
    pub(super) async fn escalate(&mut self, level: EmergencyLevel, reason: &str) {
        let Some(signal) = self.emergency.escalate(level, reason, self.clock.now_ms()) else {
            return;
        };
        let attributes = [("level", level.as_str_name().to_owned()), ("reason", reason.to_owned())];
        self.events.push(TelemetryEvent::named("tolaria.emergency.escalated", TelemetryLevel::Error, &attributes));
        if level == EmergencyLevel::Halt {
            tracing::error!(reason, "tolaria.emergency.halt");
            self.events.push(TelemetryEvent::named(
                "tolaria.emergency.halt",
                TelemetryLevel::Critical,
                &[("reason", reason.to_owned())],
            ));
        }
        self.broadcast(signal).await;
    }

    /// The telemetry bus's publisher snapshot, after the epoch's packets (nothing
    /// when the port is not a bus): Oona's live producer of `oona.queue.depth`.
    async fn publish_bus_snapshot(&mut self) {
        let points = self.peers.telemetry.bus_snapshot().await;
        if points.is_empty() {
            return;
        }
        let id = format!("oona-tolaria-e{}", self.epoch);
        for packet in snapshot_packets(&id, points, self.clock.now_ms(), self.config.planted) {
            if let Err(error) = self.peers.telemetry.publish_telemetry(&packet).await {
                tracing::warn!(epoch = self.epoch, %error, "tolaria.bus_snapshot_failed");
            }
        }
    }

    /// A minimal packet that says the full one was refused (only the two KPIs).
    fn refused_packet(&self, why: &str) -> crate::leyline::TelemetryPacket {
        tracing::warn!(epoch = self.epoch, why, "tolaria.telemetry_refused");
        crate::leyline::TelemetryPacket {
            packet_id: format!("tolaria-e{}", self.epoch),
            source_subsystem: "tolaria".to_owned(),
            level: TelemetryLevel::Warning.into(),
            events: vec![TelemetryEvent::named("tolaria.telemetry_refused", TelemetryLevel::Warning, &[])],
            ..Default::default()
        }
    }
}
