//! Urza, the artifact library — for now only the part Kasmina talks to: it
//! answers kernel prefetch requests over Oona (see [`serve_kernels`]). The
//! catalog, WAL and artifact store of Esper-Lite's Urza arrive with their issue.

mod kernels;

pub use kernels::{UrzaConfig, serve_kernels};
