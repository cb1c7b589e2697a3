//! The Esper-Lite subsystems.
//!
//! Everything in this crate is production code: the same functions run inside the
//! deterministic simulation (`esper-sim`) and in the real profile (tokio, real
//! sockets, real files). The crate therefore never names a driver. It reaches the
//! outside world only through small seams:
//!
//! * [`net::Connector`] for TCP — tokio sockets for real, turmoil sockets in the sim;
//! * tokio time for every clock — virtual under the sim, wall-clock for real;
//! * an injected seeded RNG (`rand::Rng`) — never a thread or OS RNG;
//! * [`storage::Storage`] for files — the local file system for real, the simulated
//!   disk (crashes, torn writes, injected faults) in the sim.
//!
//! Architecture invariant: `esper-core` never depends on turmoil, proptest or insta,
//! and never reads `std::time`, a thread RNG or a randomly-seeded hasher
//! (`clippy.toml` enforces the last three).

pub mod breaker;
pub mod clock;
pub mod env_config;
pub mod karn;
pub mod kasmina;
pub mod leyline;
pub mod net;
pub mod nissa;
pub mod oona;
pub mod planted;
pub mod simic;
pub mod storage;
pub mod tamiyo;
pub mod tezzeret;
pub mod tolaria;
pub mod urza;
pub mod wal;
pub mod weatherlight;
