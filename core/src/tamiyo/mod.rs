//! Tamiyo, the strategic controller: one decision per optimizer step.
//!
//! Tolaria sends a `SystemStatePacket`; Tamiyo's [`policy`] proposes an action from the
//! packet history (loss trend, plateau, seed health), [`metadata`] looks up the
//! proposed blueprint (Urza's catalog) under a timeout and a breaker, the [`risk`]
//! engine may veto it into a PAUSE, and [`service`] turns the outcome into an
//! `AdaptationCommand`, a `FieldReport` and telemetry. [`rpc`] serves the same service
//! over TCP with signed Leyline frames. Tolaria only ever sees the `TamiyoPort` trait.
//! [`field_reports`] keeps the reports in a WAL with sidecars, retention and backup.

pub mod config;
pub mod field_reports;
pub mod learned;
pub mod metadata;
pub mod outcome;
pub mod policy;
pub mod policy_updates;
pub mod risk;
pub mod rpc;
pub mod service;
pub mod sink;
pub mod telemetry;
pub mod trend;

pub use config::{TamiyoConfig, TamiyoConfigError};
pub use learned::{GerminationHead, HeadError};
pub use metadata::{BlueprintCatalog, BlueprintMetadata, BlueprintMetadataSource, MetadataError, TamiyoTimeoutError};
pub use policy::{Policy, PolicyAction, PolicyConfig, PolicyDecision};
pub use risk::{RiskConfig, RiskEngine, RiskVerdict};
pub use rpc::{RpcConfig, RpcCounters, RpcError, RpcStats, TamiyoClient, serve_tamiyo};
pub use service::{TamiyoCounters, TamiyoService, UnixMillis};
pub use sink::{FieldReportSink, FieldReportSinkError, MemoryFieldReportSink};
