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

// turmoil hands tokio a seed for its scheduler only under `--cfg tokio_unstable`;
// without it the order in which ready tasks run is tokio's own, and a seed no longer
// names one run. A `RUSTFLAGS` variable replaces the flags `.cargo/config.toml` sets,
// which silently dropped the cfg, so the build refuses instead.
#[cfg(not(tokio_unstable))]
compile_error!(
    "esper-sim needs `--cfg tokio_unstable`: without it turmoil cannot seed tokio's scheduler and runs are not \
     reproducible from their seed. .cargo/config.toml sets it, but a RUSTFLAGS variable replaces those flags: \
     unset RUSTFLAGS, or keep the cfg in it, e.g. RUSTFLAGS=\"--cfg tokio_unstable -Dwarnings\"."
);

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
mod tally;
pub mod trace;
mod world;

pub use clock::ClockSkew;
pub use determinism::{Divergence, check_determinism};
pub use disk::{DiskOp, SimDisk, SimDiskConfig};
pub use fault::{Fault, FaultSchedule, FaultScheduleError, FaultTarget, ScheduledFault};
pub use invariant::{Invariant, Violation};
pub use net::{NET_TARGET, TracedStream, TurmoilConnector, TurmoilListener};
pub use report::{Outcome, RunReport};
pub use rng::{Incarnations, RngTree};
pub use scenario::{
    PLANTED_BUGS_FEATURE, SimScenario, TCH_FEATURE, cargo_run, plant_flag, replay_command, run_scenario,
    run_scenario_planted, run_scenario_with,
};
pub use space::{DiskTarget, FaultSpace};
pub use tally::Tally;
pub use trace::TraceMode;
pub use world::{World, WorldConfig};
