//! Esper's scenarios, and the logic the `esper` CLI calls.
//!
//! [`sim`] holds the registered scenarios and [`registry`] the one list of them
//! that the CLI, the tests and the benches share; [`real`] the real profile's
//! runtimes; [`rc1`] the RC1 harness (both profiles); [`drills`] the generated
//! fault schedules (sweep, replay, shrink); [`runs`] one run or a determinism
//! check, watched; [`timeline`] the trace viewer.

pub mod drills;
pub mod rc1;
pub mod real;
pub mod registry;
pub mod runs;
pub mod seeds;
pub mod sim;
pub mod timeline;
