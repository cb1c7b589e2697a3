//! The faults the RC1 workloads inject, as wrappers around the real collaborators:
//! a Tamiyo or Kasmina that stops answering on a plan, and a checkpoint store whose
//! reads take a fixed time (a slow remote store).
#![allow(async_fn_in_trait, reason = "Tolaria's ports are single-threaded, like the trait")]

use std::time::Duration;

use esper_core::leyline::{AdaptationCommand, SeedState, SystemStatePacket};
use esper_core::tolaria::ports::{KasminaPort, PortError, TamiyoPort};
use esper_core::tolaria::{Checkpoint, CheckpointError, CheckpointStore};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Which calls go unanswered.
#[derive(Debug, Clone)]
pub enum StallPlan {
    /// Every call is answered.
    Never,
    /// Every call: the service is down.
    Always,
    /// The first call of every Nth epoch (1-based epochs; Tamiyo only, which sees them).
    FirstCallOfEveryNthEpoch(u32),
    /// Each call with this probability, drawn from the run's seed.
    Ratio { ratio: f64, rng: Box<ChaCha8Rng> },
}

impl StallPlan {
    /// Whether this call stalls; `first_of_epoch` is the call's epoch when it is the
    /// first call seen in it.
    fn stalls(&mut self, first_of_epoch: Option<u32>) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::FirstCallOfEveryNthEpoch(n) => first_of_epoch.is_some_and(|epoch| epoch % *n == 0),
            Self::Ratio { ratio, rng } => rng.random_bool(*ratio),
        }
    }
}

/// `inner`, except that the calls the plan picks never answer, so Tolaria's own
/// step timeout is what ends them (a hung service, not an error reply).
#[derive(Debug)]
pub struct Stalling<P> {
    pub inner: P,
    plan: StallPlan,
    /// Calls received, answered or not.
    pub calls: u64,
    pub stalls: u64,
    /// Epochs in which at least one call came (Tamiyo only; RC1's `evaluations`,
    /// its stub being consulted once an epoch).
    pub epochs_called: u64,
    last_epoch: Option<u32>,
}

impl<P> Stalling<P> {
    pub fn new(inner: P, plan: StallPlan) -> Self {
        Self { inner, plan, calls: 0, stalls: 0, epochs_called: 0, last_epoch: None }
    }

    async fn gate(&mut self, epoch: Option<u32>) {
        self.calls += 1;
        let first_of_epoch = epoch.filter(|&e| self.last_epoch != Some(e));
        if first_of_epoch.is_some() {
            self.epochs_called += 1;
            self.last_epoch = first_of_epoch;
        }
        if self.plan.stalls(first_of_epoch) {
            self.stalls += 1;
            std::future::pending::<()>().await;
        }
    }
}

impl<P: TamiyoPort> TamiyoPort for Stalling<P> {
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError> {
        self.gate(Some(packet.current_epoch)).await;
        self.inner.evaluate_step(packet).await
    }
}

impl<P: KasminaPort> KasminaPort for Stalling<P> {
    async fn apply_command(&mut self, command: &AdaptationCommand) -> Result<(), PortError> {
        self.gate(None).await;
        self.inner.apply_command(command).await
    }

    fn seed_states(&self) -> Vec<SeedState> {
        self.inner.seed_states()
    }

    fn finalize_step(&mut self, global_step: u64) {
        self.inner.finalize_step(global_step);
    }
}

/// A checkpoint store whose reads take `read_latency` before they start (tokio
/// time: virtual in the sim, real in the real profile).
#[derive(Debug)]
pub struct SlowCheckpoints<C> {
    pub inner: C,
    pub read_latency: Duration,
}

impl<C: CheckpointStore> CheckpointStore for SlowCheckpoints<C> {
    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        self.inner.save(checkpoint).await
    }

    async fn load_latest(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        tokio::time::sleep(self.read_latency).await;
        self.inner.load_latest().await
    }
}
