//! One optimizer step and its hooks: Tamiyo's decision and Kasmina's apply, each
//! under the step timeout, with conservative mode as the fallback.

use std::time::Duration;

use tokio::time::{Instant, timeout};

use super::device::{Batch, StepOutcome};
use super::ports::{EmergencyPort, KasminaPort, Ports, TamiyoPort};
use super::trainer::{StepTally, Trainer};
use crate::leyline::{
    AdaptationCommand, CommandType, EmergencySignal, SystemStatePacket, TelemetryEvent, TelemetryLevel, Timestamp,
};

/// How long an emergency broadcast may take, as the original.
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(2);

impl<P: Ports> Trainer<P> {
    /// Trains on `batch`, then consults Tamiyo and applies the command.
    pub(super) async fn step(&mut self, batch: &Batch, tally: &mut StepTally) {
        self.check_isolation(batch);
        let outcome = self.device.train_step(batch);
        self.charge_step_cost().await;
        self.global_step += 1;
        tally.steps += 1;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => return tally.note_failure(format!("step {}: {error}", self.global_step)),
        };
        if !outcome.loss.is_finite() || outcome.loss > self.config.divergence_loss {
            tally.note_failure(format!("step {}: loss diverged to {}", self.global_step, outcome.loss));
            let attributes = [("loss", outcome.loss.to_string()), ("step", self.global_step.to_string())];
            self.events.push(TelemetryEvent::named("tolaria.divergence", TelemetryLevel::Warning, &attributes));
            self.rollback_to(self.global_step - 1).await;
            return;
        }
        let hooks_started = Instant::now();
        let packet = self.state_packet(outcome);
        let command = self.consult_tamiyo(&packet, tally).await;
        let tamiyo_ms = millis_since(hooks_started);
        self.apply_command(&command, tally).await;
        self.peers.kasmina.finalize_step(self.global_step);
        self.sync_grafts();
        let hook_ms = millis_since(hooks_started);
        self.last_hook_ms = (hook_ms, tamiyo_ms);
        tally.hook_max_ms = tally.hook_max_ms.max(hook_ms);
        // The state filed for this step is the model as the step leaves it, seeds
        // grafted as Kasmina now has them: a rollback to it restores exactly that.
        match self.device.snapshot() {
            Ok(snapshot) => {
                self.fast_cache.insert(self.global_step, snapshot);
            }
            Err(error) => tally.note_failure(format!("snapshot at step {}: {error}", self.global_step)),
        }
    }

    /// The sim's cost model: virtual time for the step just taken, at the device's
    /// current pace (a throttled device takes longer). tokio's timers count whole
    /// milliseconds, so sub-millisecond costs accrue and are slept in whole
    /// milliseconds as they add up (16 steps of 270 µs take 4 ms, not 16).
    async fn charge_step_cost(&mut self) {
        self.cost_debt += self.pace.scale(self.config.step_cost);
        let whole = Duration::from_millis(u64::try_from(self.cost_debt.as_millis()).unwrap_or(u64::MAX));
        if !whole.is_zero() {
            tokio::time::sleep(whole).await;
            self.cost_debt -= whole;
        }
    }

    fn state_packet(&self, outcome: StepOutcome) -> SystemStatePacket {
        let (validation_loss, validation_accuracy) = self.last_eval;
        let (hook_ms, tamiyo_ms) = self.last_hook_ms;
        SystemStatePacket {
            version: 1,
            current_epoch: self.epoch + 1,
            validation_accuracy,
            validation_loss,
            timestamp_ns: self.clock.now_ns(),
            training_metrics: [
                ("loss".to_owned(), outcome.loss),
                ("gradient_norm".to_owned(), outcome.gradient_norm),
                ("hook_latency_ms".to_owned(), hook_ms as f32),
                ("tamiyo_latency_ms".to_owned(), tamiyo_ms as f32),
            ]
            .into(),
            seed_states: self.peers.kasmina.seed_states(),
            packet_id: format!("{}-s{}", self.config.run_id, self.global_step),
            global_step: self.global_step,
            training_loss: outcome.loss,
            source_subsystem: "tolaria".to_owned(),
            training_run_id: self.config.run_id.clone(),
            ..SystemStatePacket::default()
        }
    }

    /// Tamiyo's command, or the conservative command when Tamiyo is skipped, late or
    /// failing. A late or failing Tamiyo also fails the epoch (its reason is the step
    /// failure), as in Esper-Lite, so conservative mode lasts at least one more epoch.
    async fn consult_tamiyo(&mut self, packet: &SystemStatePacket, tally: &mut StepTally) -> AdaptationCommand {
        if self.conservative {
            return self.conservative_command();
        }
        match timeout(self.config.step_timeout, self.peers.tamiyo.evaluate_step(packet)).await {
            Ok(Ok(command)) => {
                self.counters.tamiyo_evaluations_total += 1;
                command
            }
            Ok(Err(error)) => {
                self.counters.hook_errors_total += 1;
                tally.note_failure("tamiyo_error".to_owned());
                self.events.push(TelemetryEvent::named(
                    "tolaria.tamiyo_error",
                    TelemetryLevel::Warning,
                    &[("error", error.to_string())],
                ));
                self.conservative_command()
            }
            Err(_) => {
                self.counters.timeout_tamiyo_total += 1;
                tally.note_failure("tamiyo_timeout".to_owned());
                tracing::warn!(step = self.global_step, "tolaria.tamiyo_timeout");
                self.events.push(TelemetryEvent::named("tolaria.tamiyo_timeout", TelemetryLevel::Warning, &[]));
                self.conservative = true;
                self.conservative_command()
            }
        }
    }

    /// Kasmina applies `command`; a late or failing Kasmina fails the epoch, as Tamiyo does.
    async fn apply_command(&mut self, command: &AdaptationCommand, tally: &mut StepTally) {
        match timeout(self.config.step_timeout, self.peers.kasmina.apply_command(command)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                self.counters.hook_errors_total += 1;
                tally.note_failure("kasmina_error".to_owned());
                self.events.push(TelemetryEvent::named(
                    "tolaria.kasmina_error",
                    TelemetryLevel::Warning,
                    &[("error", error.to_string())],
                ));
            }
            Err(_) => {
                self.counters.timeout_kasmina_total += 1;
                tally.note_failure("kasmina_timeout".to_owned());
                tracing::warn!(step = self.global_step, "tolaria.kasmina_timeout");
                self.events.push(TelemetryEvent::named("tolaria.kasmina_timeout", TelemetryLevel::Warning, &[]));
                self.conservative = true;
            }
        }
    }

    /// The command used while Tamiyo is skipped: a pause that changes nothing.
    fn conservative_command(&self) -> AdaptationCommand {
        AdaptationCommand {
            version: 1,
            command_id: format!("{}-conservative", self.config.run_id),
            command_type: CommandType::Pause.into(),
            issued_at: Some(Timestamp::from_millis(self.clock.now_ms())),
            issued_by: "tolaria".to_owned(),
            annotations: [("risk_reason".to_owned(), "conservative_mode".to_owned())].into(),
            ..AdaptationCommand::default()
        }
    }

    /// Sends `signal` to the emergency port under the broadcast timeout and counts it.
    pub(super) async fn broadcast(&mut self, signal: EmergencySignal) {
        let delivered = matches!(timeout(BROADCAST_TIMEOUT, self.peers.emergency.broadcast(&signal)).await, Ok(Ok(())));
        self.emergency.record_broadcast(delivered);
        let (broadcasts, _, halts) = self.emergency.totals();
        self.counters.emergency_broadcasts_total = broadcasts;
        self.counters.emergency_halts_total = halts;
        if !delivered {
            tracing::warn!(level = signal.level, reason = %signal.reason, "tolaria.emergency.broadcast_failed");
        }
    }
}

fn millis_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1_000.0
}
