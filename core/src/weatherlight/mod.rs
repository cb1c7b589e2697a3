//! Weatherlight, the supervisor of the Esper-Lite services.
//!
//! The supervisor itself (start, restart with backoff, emergency routing) arrives
//! with its own issue. What lives here now is the piece every other part of it
//! leans on: [`heartbeat`] — the liveness probe Weatherlight runs against each
//! subsystem. It is also the first scenario the simulation drives end to end,
//! because it exercises every seam (network, time, seeded RNG) with very little code.

pub mod heartbeat;
