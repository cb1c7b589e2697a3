//! Drills: scenarios under generated fault schedules, swept over many seeds.
//!
//! A scenario that declares a [`esper_sim::FaultSpace`] can be drilled: for each
//! seed, [`generate::draw`] draws a schedule from that space (optionally swarm:
//! a subset of fault kinds first), the scenario runs under it, and its hosts and
//! the world judge the invariants ([`esper_sim::Invariant`]). [`sweep`] does that
//! for a range of seeds on every core and writes a [`failure::FailureRecord`] per
//! failure; [`shrink`] minimises one; `tests/drills/regressions/` keeps the ones
//! worth replaying forever.

pub mod alerts;
pub mod complete;
pub mod failure;
pub mod generate;
pub mod hang;
pub mod lifecycle;
pub mod shrink;
pub mod sweep;
pub mod wire;
