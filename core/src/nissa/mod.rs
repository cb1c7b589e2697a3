//! Nissa, the observability service: telemetry in, metrics, alerts and SLOs out.
//!
//! * Ingest ([`run_ingest`]): a consumer group (`nissa`) on Oona's telemetry,
//!   emergency and normal streams; telemetry packets, system state packets and
//!   field reports become Prometheus metrics ([`Exporter`], names by [`naming`]),
//!   alert evaluations ([`alerts`]), SLO samples ([`slo`]) and documents
//!   ([`index`]). The loop survives Redis outages and restarts and never exits;
//!   [`ingest_until`] is the same loop with a graceful, draining stop.
//! * HTTP ([`serve_http`], axum over the [`Connector`] seam): `/metrics`,
//!   `/healthz`, `/readyz`, `/metrics/summary`.
//! * [`prometheus_rules`] renders the same alert rules as a Prometheus rules file
//!   (`ci/prometheus/alert_rules.yml`).
//!
//! Architecture invariant: alerts are evaluated on samples in ingest order with
//! the injected clock; nothing here reads the wall clock or a thread RNG, so the
//! sim replays Nissa's alerting exactly.

pub mod alerts;
mod config;
mod exporter;
mod http;
mod http_shed;
pub mod index;
mod ingest;
mod ingest_loop;
pub mod naming;
mod parts;
pub mod prometheus_rules;
pub mod slo;
mod state;
mod summary;

pub use config::{
    ELASTICSEARCH_URL_ENV, IndexUrl, LATENCY_RULE_ENV, NissaConfig, NissaConfigError, PORT_ENV, PREFETCH_RULE_ENV,
    SLO_WINDOWS_ENV,
};
pub use exporter::{Exporter, LATENCY_BUCKETS_SECONDS, MetricRejection};
pub use http::{router, serve_http, serve_http_on};
pub use http_shed::HttpShed;
pub use ingest::{SIMIC_REWARD_METRIC, SIMIC_SOURCE};
pub use ingest_loop::{ingest_until, run_ingest};
pub use state::Nissa;
pub use summary::{Health, IngestCounts, Liveness, Summary};

use std::time::Duration;

use rand::RngCore;

use crate::net::Connector;
use crate::net::http1::HttpLimits;
use crate::oona::{OonaClient, StreamConfig};
use index::{DocumentIndex, ElasticIndex, IndexRouter, MemoryIndex};

/// Nissa's consumer group on every stream.
pub const GROUP: &str = "nissa";

/// `base` adjusted for Nissa: its own consumer group (so it reads every message
/// without taking any from other groups), short blocking reads (it polls three
/// streams in turn) and several entries per read.
pub fn bus_config(base: StreamConfig) -> StreamConfig {
    StreamConfig {
        group: GROUP.to_owned(),
        consumer: GROUP.to_owned(),
        block: Duration::from_millis(100),
        read_count: 128,
        ..base
    }
}

impl Nissa {
    /// The index router for this Nissa: `primary` with the in-memory fallback.
    pub fn index_router<E: DocumentIndex>(&self, primary: Option<E>) -> IndexRouter<E> {
        IndexRouter::new(primary, MemoryIndex::new(self.config().memory_index_capacity), &self.exporter())
    }
}

/// Runs Nissa — the ingest loop on `bus` and HTTP on the configured port — until
/// the HTTP listener fails. Documents go to Elasticsearch when a URL is
/// configured, to memory otherwise; `rng` draws retry jitter.
pub async fn run<C: Connector, R: RngCore>(
    connector: C,
    nissa: Nissa,
    bus: OonaClient<C, R>,
    rng: impl RngCore,
) -> std::io::Result<()> {
    let elastic = nissa
        .config()
        .elasticsearch
        .clone()
        .map(|url| ElasticIndex::new(connector.clone(), &url.host, url.port, HttpLimits::default()));
    let ingest = run_ingest(nissa.clone(), bus, nissa.index_router(elastic), rng);
    tokio::select! {
        never = ingest => match never {},
        served = serve_http(&connector, nissa) => served,
    }
}
