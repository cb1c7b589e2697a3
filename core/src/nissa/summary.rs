//! What the HTTP endpoints report: health, readiness and `/metrics/summary`.

use std::collections::BTreeMap;

use super::alerts::{ActiveAlert, Notification};
use super::index::IndexStatus;
use super::slo::SloStatus;
use super::state::Nissa;

/// The ingest loop's view of Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Whether the last round against Redis succeeded.
    pub redis_up: bool,
    /// Whether every consumer group exists (set once created).
    pub groups_ready: bool,
    /// Rounds that failed in a row.
    pub consecutive_failures: u32,
    /// The last Redis error, if any.
    pub last_error: Option<String>,
    /// Unix ms of the last successful round.
    pub last_round_ms: Option<u64>,
    /// Rounds completed, successful or not.
    pub rounds: u64,
    /// Rounds that failed, since Nissa started.
    pub failed_rounds: u64,
}

/// What was ingested.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestCounts {
    pub telemetry_packets: u64,
    pub system_state_packets: u64,
    pub field_reports: u64,
    /// Messages of other types, acked and left alone.
    pub ignored: u64,
    /// Messages that did not decode (dead-lettered).
    pub rejected: u64,
    /// Unix ms of the last message ingested.
    pub last_ingest_ms: Option<u64>,
}

/// `/metrics/summary`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub generated_at_ms: u64,
    /// Firing alerts by name.
    pub alerts: BTreeMap<String, ActiveAlert>,
    /// SLOs by name.
    pub slo: BTreeMap<String, SloStatus>,
    /// The latest notifications the route stubs received, oldest first.
    pub notifications: Vec<Notification>,
    /// Notifications per route and state (`slack` → `firing` → n).
    pub notification_counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Alert rule evaluations so far.
    pub alert_evaluations: u64,
    pub ingest: IngestCounts,
    pub health: Health,
    pub index: IndexStatus,
}

/// `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Liveness {
    /// `ok` when Redis answers and the groups exist, else `degraded` (still live).
    pub status: &'static str,
    pub redis: &'static str,
    pub health: Health,
    pub ingest: IngestCounts,
}

impl Nissa {
    /// Everything `/metrics/summary` shows, now.
    pub fn summary(&self) -> Summary {
        let now_ms = self.now_ms();
        let state = self.lock();
        let mut notification_counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((route, kind), count) in state.routes.counts() {
            notification_counts.entry(route.as_str().to_owned()).or_default().insert(kind.as_str().to_owned(), *count);
        }
        Summary {
            generated_at_ms: now_ms,
            alerts: state.alerts.active().into_iter().map(|(name, alert)| (name.to_owned(), alert.clone())).collect(),
            slo: state.slo.status(now_ms),
            notifications: state.routes.recent().cloned().collect(),
            notification_counts,
            alert_evaluations: state.alerts.evaluations(),
            ingest: state.counts.clone(),
            health: state.health.clone(),
            index: state.index.clone(),
        }
    }

    /// Whether Nissa is ready: Redis answered its last round and the groups exist.
    pub fn ready(&self) -> bool {
        let state = self.lock();
        state.health.redis_up && state.health.groups_ready
    }

    /// `/healthz`: always live while it can answer; says how Redis and ingest are doing.
    pub fn liveness(&self) -> Liveness {
        let state = self.lock();
        let up = state.health.redis_up && state.health.groups_ready;
        Liveness {
            status: if up { "ok" } else { "degraded" },
            redis: if state.health.redis_up { "up" } else { "down" },
            health: state.health.clone(),
            ingest: state.counts.clone(),
        }
    }

    /// The Prometheus text exposition, with burn-rate gauges brought up to now.
    pub fn render_metrics(&self) -> String {
        let now_ms = self.now_ms();
        let state = self.lock();
        for (name, status) in state.slo.status(now_ms) {
            for (window, burn) in status.windows {
                state.exporter.slo_burn_rate.with_label_values(&[name.as_str(), window.as_str()]).set(burn.burn_rate);
            }
        }
        state.exporter.render()
    }
}
