//! The deterministic world Esper's subsystems run in.
//!
//! A [`World`] is one seeded turmoil simulation: it owns the clock, the network and
//! (as later issues land) Redis and the disk. Everything random in a run descends
//! from one `u64` seed through the [`RngTree`]; every `tracing` event is recorded as a
//! canonical line and folded into a running hash ([`trace`]); faults come from a
//! [`FaultSchedule`], which is plain data. Same seed + same commit ⇒ same hash.
//!
//! Architecture invariant: nothing here reads the wall clock, the OS entropy pool,
//! a thread RNG or a randomly-seeded hasher; `clippy.toml` enforces it.

mod clock;
mod determinism;
pub mod disk;
mod fault;
mod invariant;
mod net;
pub mod redis;
mod report;
mod rng;
mod scenario;
mod space;
pub mod trace;
mod world;

pub use clock::ClockSkew;
pub use determinism::{Divergence, check_determinism};
pub use disk::{DiskOp, SimDisk, SimDiskConfig};
pub use fault::{Fault, FaultSchedule, FaultScheduleError, ScheduledFault};
pub use invariant::{Invariant, Violation};
pub use net::{TurmoilConnector, TurmoilListener};
pub use report::{Outcome, RunReport};
pub use rng::{Incarnations, RngTree};
pub use scenario::{SimScenario, replay_command, run_scenario, run_scenario_planted, run_scenario_with};
pub use space::{DiskTarget, FaultSpace};
pub use trace::TraceMode;
pub use world::{World, WorldConfig};
