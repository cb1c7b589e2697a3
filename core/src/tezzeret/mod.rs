//! Tezzeret, the compile forge: turns every blueprint of Karn's catalog into a
//! kernel and publishes it to Urza's library.
//!
//! A forge pass is a list of jobs, one per blueprint, kept in a small write-ahead
//! file, `forge_wal.json` in the artifact directory ([`wal`]): `{"pending":[ids]}`,
//! replaced atomically after every job and removed when the list is empty. A
//! forge that finds the file resumes it; otherwise it plans every catalog
//! blueprint the library does not hold yet. Jobs whose blueprint the library
//! already holds are skipped, so a crash after a publication but before the WAL
//! caught up never compiles that blueprint twice.
//!
//! A compile is real work on a device ([`compile`]): build the blueprint's module,
//! run a forward pass over a probe batch, serialise weights and probe output. A
//! failed compile is retried up to `max_retries` times (each retry counted in
//! `tezzeret.compile.retries_total`); after three consecutive failed jobs the
//! breaker opens and the rest of the pass is skipped (`breaker_open_skip`),
//! staying pending for the next pass — Esper-Lite's rule.

pub mod compile;
mod forge;
pub mod wal;

pub use compile::{CompileError, CompiledKernel, Compiler, DeviceCompiler};
pub use forge::{CompileJobConfig, Forge, ForgeCounters, ForgeReport, TezzeretError, forge_telemetry};
