//! The training loop: epochs of optimizer steps on a [`Device`], with Tamiyo
//! consulted and Kasmina applied at every step, as Esper-Lite's Tolaria.
//!
//! This file holds the trainer's state and the epoch; the per-step hooks live in
//! `step.rs`, the end-of-epoch verdict in `verdict.rs` and rollback in
//! `rollback/restore.rs`.

use tokio::time::Instant;

use super::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use super::config::TrainingLoopConfig;
use super::device::Dataset;
use super::device::{Device, DeviceError};
use super::emergency::EmergencyController;
use super::metrics::TolariaCounters;
use super::pace::StepPace;
use super::ports::{Collaborators, KasminaPort, Peers, PortError, Ports};
use super::rollback::FastCache;
use crate::breaker::CircuitBreaker;
use crate::clock::UnixClock;
use crate::leyline::{TelemetryEvent, TelemetryLevel, TelemetryPacket};

/// Why an epoch failed, in Esper-Lite's priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochFailure {
    /// The epoch breaker was open.
    BreakerOpen,
    /// The epoch took longer than `epoch_budget`.
    EpochBudget,
    /// A step failed on the device or diverged.
    StepFailure,
    /// A step's Tamiyo + Kasmina hooks took longer than `hook_budget`.
    HookBudget,
}

impl EpochFailure {
    /// The reason string of the original (`breaker_open`, `epoch_budget`, …).
    pub fn reason(self) -> &'static str {
        match self {
            Self::BreakerOpen => "breaker_open",
            Self::EpochBudget => "epoch_budget",
            Self::StepFailure => "step_failure",
            Self::HookBudget => "hook_budget",
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: u32,
    /// Evaluation loss and accuracy over the whole dataset after the epoch.
    pub loss: f32,
    pub accuracy: f32,
    /// Epoch duration (`tolaria.training.latency_ms`): virtual in the sim.
    pub latency_ms: f64,
    /// Optimizer steps taken.
    pub steps: u64,
    pub failure: Option<EpochFailure>,
    /// Whether the trainer ended the epoch in conservative mode.
    pub conservative: bool,
    /// Whether the emergency ladder reached L4: training stops.
    pub halted: bool,
    /// The packets published to the telemetry port: KPIs first, then events.
    pub telemetry: Vec<TelemetryPacket>,
}

/// Errors that stop the loop. Everything else is counted, evented and survived.
#[derive(Debug, thiserror::Error)]
pub enum TolariaError {
    #[error("training is halted (emergency level L4) since epoch {epoch}")]
    Halted { epoch: u32 },
    #[error("the dataset is empty; nothing to train on")]
    EmptyDataset,
    #[error("device failed: {0}")]
    Device(#[from] DeviceError),
    #[error("checkpoint failed: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("Kasmina's plan in the checkpoint could not be restored: {0}")]
    KasminaPlan(PortError),
}

/// The trainer. See the module docs.
pub struct Trainer<P: Ports> {
    pub(super) config: TrainingLoopConfig,
    pub(super) device: Box<dyn Device>,
    pub(super) dataset: Dataset,
    pub(super) peers: Peers<P>,
    pub(super) checkpoints: P::Checkpoints,
    pub(super) clock: UnixClock,
    pub(super) breaker: CircuitBreaker,
    pub(super) emergency: EmergencyController,
    pub(super) fast_cache: FastCache,
    pub(super) counters: TolariaCounters,
    /// Events raised since the last telemetry packet.
    pub(super) events: Vec<TelemetryEvent>,
    /// Epochs completed.
    pub(super) epoch: u32,
    /// Optimizer steps completed (monotonic; a rollback restores parameters, not time).
    pub(super) global_step: u64,
    pub(super) conservative: bool,
    pub(super) failed_streak: u32,
    /// Last evaluation, reported in each step's `SystemStatePacket`.
    pub(super) last_eval: (f32, f32),
    /// Last step's hook latencies (`hook_latency_ms`, `tamiyo_latency_ms`).
    pub(super) last_hook_ms: (f64, f64),
    pub(super) last_restore_latency_ms: f64,
    /// Step cost not yet slept (the cost model's sub-millisecond remainder).
    pub(super) cost_debt: std::time::Duration,
    /// The device's pace, which scales the step cost (nominal unless a driver throttles it).
    pub(super) pace: StepPace,
    /// Seeds the device refused to graft, with the reason last reported.
    pub(super) graft_refusals: std::collections::BTreeMap<String, String>,
}

/// The constructor takes the collaborators' own types, which make the [`Ports`]
/// tuple, so that `Trainer::new` needs no annotation at the call.
impl<T, K, M, E, C> Trainer<(T, K, M, E, C)>
where
    (T, K, M, E, C): Ports<Tamiyo = T, Kasmina = K, Telemetry = M, Emergency = E, Checkpoints = C>,
{
    /// A trainer at epoch 0. Call [`Trainer::resume`] first to continue from a checkpoint.
    pub fn new(
        config: TrainingLoopConfig,
        device: Box<dyn Device>,
        dataset: Dataset,
        peers: Collaborators<T, K, M, E>,
        checkpoints: C,
        clock: UnixClock,
    ) -> Result<Self, TolariaError> {
        if dataset.is_empty() {
            return Err(TolariaError::EmptyDataset);
        }
        let mut fast_cache = FastCache::new(config.rollback_fast_cap_bytes);
        fast_cache.insert(0, device.snapshot()?);
        Ok(Self {
            breaker: CircuitBreaker::new(config.breaker).named("tolaria.epoch"),
            emergency: EmergencyController::new(config.run_id.clone()),
            config,
            device,
            dataset,
            peers,
            checkpoints,
            clock,
            fast_cache,
            counters: TolariaCounters::default(),
            events: Vec::new(),
            epoch: 0,
            global_step: 0,
            conservative: false,
            failed_streak: 0,
            last_eval: (f32::NAN, 0.0),
            last_hook_ms: (0.0, 0.0),
            last_restore_latency_ms: 0.0,
            cost_debt: std::time::Duration::ZERO,
            pace: StepPace::default(),
            graft_refusals: std::collections::BTreeMap::new(),
        })
    }
}

impl<P: Ports> Trainer<P> {
    /// The trainer with its step cost scaled by `pace`, which a driver may change
    /// while training runs (the sim's device throttle).
    #[must_use]
    pub fn with_pace(mut self, pace: StepPace) -> Self {
        self.pace = pace;
        self
    }

    /// Continues from the latest checkpoint, if there is one; returns it.
    pub async fn resume(&mut self) -> Result<Option<(u32, u64)>, TolariaError> {
        let Some(checkpoint) = self.checkpoints.load_latest().await? else {
            return Ok(None);
        };
        self.device.restore(&checkpoint.model)?;
        self.peers.kasmina.restore_plan(&checkpoint.kasmina).map_err(TolariaError::KasminaPlan)?;
        self.epoch = checkpoint.epoch;
        self.global_step = checkpoint.global_step;
        self.fast_cache.insert(checkpoint.global_step, checkpoint.model);
        tracing::info!(epoch = self.epoch, global_step = self.global_step, "tolaria.resumed");
        Ok(Some((self.epoch, self.global_step)))
    }

    /// Runs epochs until `epochs` have completed in total (counting resumed ones) or
    /// the emergency ladder halts training.
    pub async fn run(&mut self, epochs: u32) -> Result<Vec<EpochReport>, TolariaError> {
        let mut reports = Vec::new();
        while self.epoch < epochs {
            let report = self.run_epoch().await?;
            let halted = report.halted;
            reports.push(report);
            if halted {
                break;
            }
        }
        Ok(reports)
    }

    /// One epoch: every batch, then the verdict, checkpoint and telemetry.
    pub async fn run_epoch(&mut self) -> Result<EpochReport, TolariaError> {
        if self.emergency.halted() {
            return Err(TolariaError::Halted { epoch: self.epoch });
        }
        let started = Instant::now();
        let mut tally = StepTally { start_step: self.global_step, ..StepTally::default() };
        let batches: Vec<_> = self.dataset.batches(self.config.batch_size).collect();
        for batch in &batches {
            self.step(batch, &mut tally).await;
            if self.emergency.halted() {
                break;
            }
        }
        self.epoch += 1;
        let evaluation = self.device.evaluate(&self.dataset.whole());
        let (loss, accuracy) = match evaluation {
            Ok(e) => (e.loss, e.accuracy),
            Err(error) => {
                tally.note_failure(format!("evaluation: {error}"));
                (f32::NAN, 0.0)
            }
        };
        self.last_eval = (loss, accuracy);
        let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
        self.close_epoch(EpochClose { loss, accuracy, latency_ms, tally }).await
    }

    /// Saves the end-of-epoch checkpoint; a failure is an event, not a stop.
    pub(super) async fn checkpoint(&mut self) {
        let saved = match (self.device.snapshot(), self.peers.kasmina.plan()) {
            (Ok(model), Ok(kasmina)) => {
                let checkpoint = Checkpoint { epoch: self.epoch, global_step: self.global_step, model, kasmina };
                self.checkpoints.save(&checkpoint).await.map_err(|e| e.to_string())
            }
            (Err(error), _) => Err(error.to_string()),
            (_, Err(error)) => Err(error.to_string()),
        };
        if let Err(reason) = saved {
            tracing::warn!(epoch = self.epoch, %reason, "tolaria.checkpoint_failed");
            let event = TelemetryEvent::named("tolaria.checkpoint_failed", TelemetryLevel::Error, &[]);
            self.events.push(event);
        }
    }

    /// Trains on `dataset` from the next epoch on (a new shard from the data
    /// pipeline); an empty one is refused.
    pub fn replace_dataset(&mut self, dataset: Dataset) -> Result<(), TolariaError> {
        if dataset.is_empty() {
            return Err(TolariaError::EmptyDataset);
        }
        self.dataset = dataset;
        Ok(())
    }

    /// Counters so far.
    pub fn counters(&self) -> TolariaCounters {
        self.counters
    }

    /// The model's current snapshot (what a rollback would compare against).
    pub fn snapshot(&self) -> Result<Vec<u8>, DeviceError> {
        self.device.snapshot()
    }

    /// Optimizer steps completed.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// Epochs completed.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Whether Tamiyo is currently skipped.
    pub fn conservative(&self) -> bool {
        self.conservative
    }

    /// The collaborators, e.g. to read a recording port after a run.
    pub fn collaborators(&self) -> &Peers<P> {
        &self.peers
    }

    /// The collaborators, mutably: e.g. to drain Kasmina's telemetry between epochs.
    pub fn collaborators_mut(&mut self) -> &mut Peers<P> {
        &mut self.peers
    }

    /// Bytes of model state the fast rollback tier holds now (Esper-Lite's
    /// `tolaria.rollback.fast_size_bytes`): what a drill reads to judge the tier.
    pub fn fast_tier_bytes(&self) -> usize {
        self.fast_cache.size_bytes()
    }

    /// The duration of the last rollback (`tolaria.rollback.restore_latency_ms`).
    pub fn last_restore_latency_ms(&self) -> f64 {
        self.last_restore_latency_ms
    }
}

impl<P: Ports> std::fmt::Debug for Trainer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("run_id", &self.config.run_id)
            .field("device", &self.device.label())
            .field("epoch", &self.epoch)
            .field("global_step", &self.global_step)
            .field("conservative", &self.conservative)
            .field("emergency", &self.emergency.level())
            .finish_non_exhaustive()
    }
}

/// What the steps of one epoch left for its verdict.
#[derive(Debug, Clone, Default)]
pub(super) struct StepTally {
    /// The global step the epoch started from (where a failed epoch rolls back to).
    pub start_step: u64,
    pub steps: u64,
    pub first_failure: Option<String>,
    pub hook_max_ms: f64,
}

impl StepTally {
    pub(super) fn note_failure(&mut self, reason: String) {
        self.first_failure.get_or_insert(reason);
    }
}

/// The measured end of an epoch, handed to the verdict.
#[derive(Debug, Clone)]
pub(super) struct EpochClose {
    pub loss: f32,
    pub accuracy: f32,
    pub latency_ms: f64,
    pub tally: StepTally,
}
