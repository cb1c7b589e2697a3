//! Rollback under a deadline: the fast in-memory tier first, then the checkpoint.
//!
//! A fast hit is a memcpy. A miss goes to the checkpoint store under
//! `rollback_deadline`; running past it counts `deadline_exceeded`, emits
//! `tolaria.rollback.restore_failed`, and (with `l4_on_rollback_deadline`) halts
//! training at emergency level L4 with a signal on the emergency port.

use tokio::time::{Instant, timeout};

use crate::leyline::{EmergencyLevel, TelemetryEvent, TelemetryLevel};
use crate::planted::{Planted, PlantedBug};
use crate::tolaria::checkpoint::CheckpointStore;
use crate::tolaria::device::{Device, DeviceError, ModelSpec, ModelState};
use crate::tolaria::ports::Ports;
use crate::tolaria::trainer::Trainer;

/// How a rollback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackOutcome {
    /// Restored from the fast tier, to the state after `step`.
    FastHit { step: u64 },
    /// Restored from the checkpoint taken after `epoch` (`step` steps).
    Checkpoint { epoch: u32, step: u64 },
    /// The checkpoint did not arrive before the deadline.
    DeadlineExceeded,
    /// Nothing to restore from, or the restore itself failed.
    Failed { reason: String },
}

impl<P: Ports> Trainer<P> {
    /// Puts the model back to its state after `step` (or the nearest earlier state held).
    pub async fn rollback_to(&mut self, step: u64) -> RollbackOutcome {
        let started = Instant::now();
        tracing::info!(step, epoch = self.epoch, "tolaria.rollback.started");
        let outcome = match self.fast_cache.nearest_at_or_before(step) {
            Some((at, snapshot)) => match restore_model(self.device.as_mut(), self.config.planted, snapshot) {
                Ok(()) => RollbackOutcome::FastHit { step: at },
                Err(error) => RollbackOutcome::Failed { reason: error.to_string() },
            },
            None => {
                self.counters.rollback_fast_misses_total += 1;
                let deadline_ms = u64::try_from(self.config.rollback_deadline.as_millis()).unwrap_or(u64::MAX);
                tracing::info!(step, deadline_ms, "tolaria.rollback.fast_miss_loading_checkpoint");
                self.restore_checkpoint().await
            }
        };
        self.last_restore_latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
        if matches!(outcome, RollbackOutcome::FastHit { .. } | RollbackOutcome::Checkpoint { .. }) {
            self.rekey_restored_state();
        }
        self.account(&outcome).await;
        outcome
    }

    /// Files the restored model as the state at the current global step. Steps
    /// are never rewound, so without this the fast tier would still hold, at the
    /// step the next epoch starts from, the end state of the epoch just rolled
    /// back — and a second failed epoch in a row would "roll back" to it.
    fn rekey_restored_state(&mut self) {
        match self.device.snapshot() {
            Ok(snapshot) => {
                self.fast_cache.insert(self.global_step, snapshot);
            }
            Err(error) => tracing::warn!(step = self.global_step, %error, "tolaria.rollback.rekey_failed"),
        }
    }

    async fn restore_checkpoint(&mut self) -> RollbackOutcome {
        let started = Instant::now();
        let deadline = self.config.rollback_deadline;
        match timeout(deadline, self.checkpoints.load_latest()).await {
            Err(_) => RollbackOutcome::DeadlineExceeded,
            // `timeout` polls the load before its timer, so a load and a deadline
            // that fall due in the same wake-up count as in time. On a starved
            // thread (the real profile on a loaded machine) both can be long past
            // when the thread runs again; the load still ran past its deadline.
            Ok(_) if started.elapsed() > deadline => RollbackOutcome::DeadlineExceeded,
            Ok(Err(error)) => RollbackOutcome::Failed { reason: error.to_string() },
            Ok(Ok(None)) => RollbackOutcome::Failed { reason: "no checkpoint".to_owned() },
            Ok(Ok(Some(checkpoint))) => {
                match restore_model(self.device.as_mut(), self.config.planted, &checkpoint.model) {
                    Ok(()) => RollbackOutcome::Checkpoint { epoch: checkpoint.epoch, step: checkpoint.global_step },
                    Err(error) => RollbackOutcome::Failed { reason: error.to_string() },
                }
            }
        }
    }

    async fn account(&mut self, outcome: &RollbackOutcome) {
        let latency = format!("{:.3}", self.last_restore_latency_ms);
        if matches!(outcome, RollbackOutcome::FastHit { .. } | RollbackOutcome::Checkpoint { .. }) {
            tracing::info!(outcome = ?outcome, latency_ms = self.last_restore_latency_ms, "tolaria.rollback");
        } else {
            tracing::warn!(outcome = ?outcome, latency_ms = self.last_restore_latency_ms, "tolaria.rollback");
        }
        match outcome {
            RollbackOutcome::FastHit { .. } => self.counters.rollback_fast_hits_total += 1,
            RollbackOutcome::Checkpoint { .. } => {}
            RollbackOutcome::Failed { reason } => {
                self.counters.rollback_failures_total += 1;
                let attributes = [("reason", reason.clone()), ("latency_ms", latency)];
                self.events.push(TelemetryEvent::named(
                    "tolaria.rollback.restore_failed",
                    TelemetryLevel::Error,
                    &attributes,
                ));
            }
            RollbackOutcome::DeadlineExceeded => {
                self.counters.rollback_deadline_exceeded_total += 1;
                let attributes = [("reason", "deadline_exceeded".to_owned()), ("latency_ms", latency)];
                self.events.push(TelemetryEvent::named(
                    "tolaria.rollback.restore_failed",
                    TelemetryLevel::Critical,
                    &attributes,
                ));
                if self.config.l4_on_rollback_deadline {
                    self.escalate(EmergencyLevel::Halt, "rollback_deadline").await;
                }
            }
        }
    }
}

/// Puts `snapshot` on `device`. The planted `rollback-skips-tensor` bug restores
/// the snapshot tensor by tensor and misses one: the bias keeps the value the
/// failed epoch left it.
fn restore_model(device: &mut dyn Device, planted: Planted, snapshot: &[u8]) -> Result<(), DeviceError> {
    if !planted.armed(PlantedBug::RollbackSkipsTensor) {
        return device.restore(snapshot);
    }
    let (features, hidden, classes) = ModelState::shape(snapshot)?;
    let spec = ModelSpec { features, hidden, classes, ..ModelSpec::rc1() };
    let current = ModelState::decode(&device.snapshot()?, &spec)?;
    let restored = ModelState { bias: current.bias, ..ModelState::decode(snapshot, &spec)? };
    device.restore(&restored.encode(&spec))
}
