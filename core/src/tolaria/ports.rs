//! What Tolaria needs from the rest of the control loop, as traits.
//!
//! The trainer is written against these ports only. Tamiyo may answer in-process or
//! over the (simulated) network, Kasmina may be the real seed manager or a stand-in,
//! and emergency signals may go to the Oona emergency stream or into a test's log —
//! the loop cannot tell, which is what lets one trainer run in every profile.
//!
//! The futures are not `Send`: the sim drives everything on one thread, and the real
//! profile runs the trainer on a current-thread runtime for the same reason.
#![allow(async_fn_in_trait, reason = "single-threaded runtimes; no Send bound wanted")]

use super::checkpoint::CheckpointStore;
use super::device::{Device, Gradients, SeedGraft};
use crate::leyline::{AdaptationCommand, EmergencySignal, MetricPoint, SeedState, SystemStatePacket, TelemetryPacket};

/// Why a collaborator did not deliver. Timeouts are not errors here: Tolaria imposes
/// them itself around each call.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{service} is unavailable: {reason}")]
    Unavailable { service: &'static str, reason: String },
    #[error("{service} refused the request: {reason}")]
    Refused { service: &'static str, reason: String },
}

/// The five collaborators one trainer is wired to, named once: a trainer is a
/// `Trainer<P: Ports>`. Implemented for the tuple `(tamiyo, kasmina, telemetry,
/// emergency, checkpoints)`, so a wiring's type reads
/// `Trainer<(ScriptedTamiyo, SeedManager, Outbox, Outbox, Shelf)>`.
pub trait Ports {
    type Tamiyo: TamiyoPort;
    type Kasmina: KasminaPort;
    type Telemetry: TelemetryPort;
    type Emergency: EmergencyPort;
    type Checkpoints: CheckpointStore;
}

impl<T, K, M, E, C> Ports for (T, K, M, E, C)
where
    T: TamiyoPort,
    K: KasminaPort,
    M: TelemetryPort,
    E: EmergencyPort,
    C: CheckpointStore,
{
    type Tamiyo = T;
    type Kasmina = K;
    type Telemetry = M;
    type Emergency = E;
    type Checkpoints = C;
}

/// Tolaria's collaborators bar its checkpoint store, reached only through their ports.
#[derive(Debug)]
pub struct Collaborators<T, K, M, E> {
    pub tamiyo: T,
    pub kasmina: K,
    pub telemetry: M,
    pub emergency: E,
}

/// The [`Collaborators`] of a wiring `P`.
pub type Peers<P> =
    Collaborators<<P as Ports>::Tamiyo, <P as Ports>::Kasmina, <P as Ports>::Telemetry, <P as Ports>::Emergency>;

/// Tamiyo, the policy: a decision per optimizer step.
pub trait TamiyoPort {
    /// Decides on `packet`. Tolaria bounds this with `TAMIYO_STEP_TIMEOUT_MS`.
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError>;
}

/// Kasmina, the seed manager: applies commands and reports seed state.
pub trait KasminaPort {
    /// Applies `command`. Tolaria bounds this with the same step timeout.
    async fn apply_command(&mut self, command: &AdaptationCommand) -> Result<(), PortError>;

    /// The seeds as they stand, for the next `SystemStatePacket`.
    fn seed_states(&self) -> Vec<SeedState>;

    /// Called once per optimizer step after the command, to advance blending.
    fn finalize_step(&mut self, global_step: u64);

    /// The seeds the model should hold now, which Tolaria grafts onto its device
    /// after each step. A stand-in Kasmina grafts nothing.
    fn grafts(&self) -> Vec<SeedGraft> {
        Vec::new()
    }

    /// Kasmina's plan for its seeds (stage, alpha, blend, kernel), opaque to Tolaria,
    /// which keeps it in every checkpoint: the model snapshot holds the seeds'
    /// parameters, and without the plan beside them a restarted Tolaria's first graft
    /// sync would drop them. Empty when there is nothing to keep (a stand-in).
    fn plan(&self) -> Result<Vec<u8>, PortError> {
        Ok(Vec::new())
    }

    /// Puts back a [`KasminaPort::plan`] from a checkpoint. A port that keeps no plan
    /// accepts only an empty one: dropping seeds it cannot hold would be silent loss.
    fn restore_plan(&mut self, plan: &[u8]) -> Result<(), PortError> {
        if plan.is_empty() {
            Ok(())
        } else {
            Err(PortError::Refused { service: "kasmina", reason: "this Kasmina keeps no seed plan".to_owned() })
        }
    }

    /// Judges one batch's real gradients, read from `device` while `seed_id` is
    /// live, for leakage between host and seed (Kasmina's isolation check). A
    /// stand-in Kasmina judges nothing.
    fn check_isolation(&mut self, device: &dyn Device, seed_id: &str, gradients: &Gradients) -> Result<(), PortError> {
        let _ = (device, seed_id, gradients);
        Ok(())
    }
}

/// Where Tolaria's per-epoch telemetry goes (Oona's telemetry stream, or a log).
pub trait TelemetryPort {
    /// Publishes one packet, already within the 280-byte budget.
    async fn publish_telemetry(&mut self, packet: &TelemetryPacket) -> Result<(), PortError>;

    /// The bus's own publisher snapshot (`oona.queue.depth`, reroutes, drops…),
    /// when the port is a bus: whoever holds the port publishes it, so Oona's
    /// figures reach Nissa beside the packets they describe. Empty for a port
    /// that is not a bus (a log, Weatherlight's hub).
    async fn bus_snapshot(&mut self) -> Vec<MetricPoint> {
        Vec::new()
    }
}

/// Where emergency signals go (Oona's emergency stream).
pub trait EmergencyPort {
    /// Broadcasts `signal`; Tolaria bounds this with a 2 s timeout, as the original.
    async fn broadcast(&mut self, signal: &EmergencySignal) -> Result<(), PortError>;
}

/// Telemetry and emergency signals kept in memory, in order: the ports for a run with
/// no bus (in-process drills, and scenarios whose checks read what was sent). Bounded
/// by the run's length only, so it is meant for finite runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outbox {
    pub telemetry: Vec<TelemetryPacket>,
    pub signals: Vec<EmergencySignal>,
}

impl TelemetryPort for Outbox {
    async fn publish_telemetry(&mut self, packet: &TelemetryPacket) -> Result<(), PortError> {
        self.telemetry.push(packet.clone());
        Ok(())
    }
}

impl EmergencyPort for Outbox {
    async fn broadcast(&mut self, signal: &EmergencySignal) -> Result<(), PortError> {
        self.signals.push(signal.clone());
        Ok(())
    }
}
