//! Esper's scenarios, and the logic the `esper` CLI calls.
//!
//! A scenario wires `esper-core` subsystems onto the hosts of an `esper-sim` world,
//! draws its faults from the seed and checks what must hold at the end. The
//! [`registry`] is the one list the CLI, the tests and the benches share.

pub mod control_loop;
pub mod drills;
pub mod embedded_redis;
pub mod heartbeat;
pub mod kasmina_lifecycle;
pub mod kasmina_prefetch;
pub mod nissa;
pub mod oona_bus;
pub mod oona_checks;
pub mod oona_ledger;
pub mod rc1;
pub mod real_profile;
pub mod registry;
pub mod seeds;
pub mod simic;
pub mod tamiyo_risk;
pub mod tamiyo_wal;
pub mod tezzeret_forge;
pub mod timeline;
pub mod up;
pub mod wal_soak;
pub mod weatherlight;
