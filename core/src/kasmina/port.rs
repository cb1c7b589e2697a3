//! Kasmina as Tolaria's port with Urza behind it.
//!
//! [`SeedManager`] alone gives a germinated seed Kasmina's built-in kernel. With
//! Urza deployed the manager waits for a kernel instead (`builtin_kernels:
//! false`), and this port fetches it: after each command it asks the
//! [`PrefetchCoordinator`] for the kernels of every seed still waiting, and
//! attaches what comes back — Urza's kernel, or the fallback when the fetch
//! failed or timed out (counted by the coordinator). The fetch happens inside
//! `apply_command`, so Tolaria's step timeout bounds it like any Kasmina call;
//! the coordinator's own per-request deadline (1 s) is shorter than Tolaria's
//! step timeout (2 s), so a slow Urza costs a fallback kernel, not a failed step.

use rand::RngCore;

use super::manager::SeedManager;
use super::prefetch::{PrefetchCoordinator, PrefetchCounters};
use crate::leyline::{AdaptationCommand, SeedState};
use crate::net::Connector;
use crate::oona::OonaError;
use crate::tolaria::device::SeedGraft;
use crate::tolaria::ports::{KasminaPort, PortError};

/// See the module docs.
#[derive(Debug)]
pub struct PrefetchingKasmina<C: Connector, R: RngCore> {
    manager: SeedManager,
    coordinator: PrefetchCoordinator<C, R>,
    kernels_attached: u64,
}

impl<C: Connector, R: RngCore> PrefetchingKasmina<C, R> {
    /// `manager` (which should have `builtin_kernels: false`) fetching through
    /// `coordinator`, whose reply group is created here.
    pub async fn prepare(manager: SeedManager, mut coordinator: PrefetchCoordinator<C, R>) -> Result<Self, OonaError> {
        coordinator.prepare().await?;
        Ok(Self { manager, coordinator, kernels_attached: 0 })
    }

    /// The seed manager (telemetry, stages).
    pub fn manager_mut(&mut self) -> &mut SeedManager {
        &mut self.manager
    }

    /// The coordinator's counters.
    pub fn prefetch_counters(&self) -> PrefetchCounters {
        self.coordinator.counters()
    }

    /// Kernels attached to seeds so far.
    pub fn kernels_attached(&self) -> u64 {
        self.kernels_attached
    }

    /// Fetches and attaches the kernels of every seed waiting for one.
    async fn fetch_waiting(&mut self) {
        let waiting = self.manager.awaiting_kernels();
        if waiting.is_empty() {
            return;
        }
        let blueprints: Vec<String> = waiting.iter().map(|(_, blueprint)| blueprint.clone()).collect();
        let outcomes = self.coordinator.prefetch(&blueprints).await;
        debug_assert_eq!(outcomes.len(), waiting.len());
        for ((seed, _), outcome) in waiting.into_iter().zip(outcomes) {
            match self.manager.attach_kernel(&seed, outcome.kernel) {
                Ok(()) => self.kernels_attached += 1,
                // Only this port attaches kernels, and no command ran since the
                // waiting list was read; a refusal would be a bug worth hearing of.
                Err(error) => tracing::warn!(%seed, %error, "kasmina: fetched kernel not attached"),
            }
        }
    }
}

impl<C: Connector, R: RngCore> KasminaPort for PrefetchingKasmina<C, R> {
    async fn apply_command(&mut self, command: &AdaptationCommand) -> Result<(), PortError> {
        let applied = self.manager.apply_command(command).await;
        self.fetch_waiting().await;
        applied
    }

    fn seed_states(&self) -> Vec<SeedState> {
        self.manager.states()
    }

    fn finalize_step(&mut self, global_step: u64) {
        self.manager.finalize_step(global_step);
    }

    fn grafts(&self) -> Vec<SeedGraft> {
        self.manager.grafts()
    }

    fn plan(&self) -> Result<Vec<u8>, PortError> {
        self.manager.plan()
    }

    fn restore_plan(&mut self, plan: &[u8]) -> Result<(), PortError> {
        self.manager.restore_plan(plan)
    }
}
