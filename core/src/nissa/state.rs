//! `Nissa`: the state the ingest loop writes and the HTTP handlers read.
//!
//! One `Arc<Mutex<…>>` holds the exporter's bookkeeping, the alert engine, the
//! route stubs, the SLO tracker and health; it is locked for one message or one
//! request at a time and never across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::alerts::{
    AlertEngine, AlertRuleError, Notification, NotificationState, RouteLog, Severity, Transition, default_rules,
};
use super::config::NissaConfig;
use super::exporter::Exporter;
use super::http_shed::HttpShed;
use super::index::{Document, IndexStatus};
use super::parts::PartTracker;
use super::slo::SloTracker;
use super::summary::{Health, IngestCounts};
use crate::clock::UnixClock;

/// Nissa's shared state; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Nissa {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: NissaConfig,
    clock: UnixClock,
    state: Mutex<State>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(super) struct State {
    pub exporter: Exporter,
    pub alerts: AlertEngine,
    pub routes: RouteLog,
    pub slo: SloTracker,
    pub health: Health,
    pub counts: IngestCounts,
    pub index: IndexStatus,
    /// Split telemetry still arriving, to count parts that never do.
    pub parts: PartTracker,
    /// Documents waiting for the ingest loop to hand them to the index.
    pub documents: Vec<Document>,
}

impl Nissa {
    /// Nissa with `config`'s rules, reading Unix time from `clock`.
    pub fn new(config: NissaConfig, clock: UnixClock) -> Result<Self, AlertRuleError> {
        let alerts = AlertEngine::new(default_rules(config.training_latency_rule, config.prefetch_rule))?;
        let exporter = Exporter::new(config.max_metric_names, config.max_sources);
        for rule in alerts.rules() {
            let levels = [(Severity::Warning, rule.warning), (Severity::Critical, rule.critical)];
            for (severity, _) in levels.iter().filter(|(_, threshold)| threshold.is_some()) {
                exporter.set_alert(&rule.name, severity.as_str(), false);
            }
        }
        let state = State {
            exporter,
            alerts,
            routes: RouteLog::new(config.notification_log),
            slo: SloTracker::new(config.slo_windows.clone(), config.slo_max_samples, config.slo_max_count),
            health: Health::default(),
            counts: IngestCounts::default(),
            index: IndexStatus::default(),
            parts: PartTracker::default(),
            documents: Vec::new(),
        };
        Ok(Self { shared: Arc::new(Shared { config, clock, state: Mutex::new(state) }) })
    }

    /// The configuration.
    pub fn config(&self) -> &NissaConfig {
        &self.shared.config
    }

    /// Unix ms now.
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// The state, locked. A poisoned lock means a handler panicked mid-update;
    /// the counters it left are still the best account there is.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the exporter (its metric handles share storage with the original).
    pub(super) fn exporter(&self) -> Exporter {
        self.lock().exporter.clone()
    }

    /// Takes the documents waiting for the index.
    pub fn take_documents(&self) -> Vec<Document> {
        std::mem::take(&mut self.lock().documents)
    }
}

impl State {
    /// Evaluates the alert rules on one sample and notifies their routes.
    pub fn evaluate(&mut self, metric: &str, value: f64, now_ms: u64) {
        for transition in self.alerts.evaluate(metric, value, now_ms) {
            let (alert, severity, value, routes, state) = match transition {
                Transition::Firing { alert, severity, value, routes } => {
                    (alert, severity, value, routes, NotificationState::Firing)
                }
                Transition::Resolved { alert, severity, value, routes } => {
                    (alert, severity, value, routes, NotificationState::Resolved)
                }
            };
            for level in [Severity::Warning, Severity::Critical] {
                let active = state == NotificationState::Firing && level == severity;
                self.exporter.set_alert(&alert, level.as_str(), active);
            }
            for route in routes {
                self.exporter.notifications.with_label_values(&[route.as_str(), state.as_str()]).inc();
                let notification = Notification { alert: alert.clone(), severity, route, state, at_ms: now_ms, value };
                self.routes.send(notification);
            }
        }
    }
}

impl Nissa {
    /// Counts one thing Nissa's HTTP server shed, in
    /// `esper_nissa_http_shed_total{reason}`, and logs it.
    pub fn count_http_shed(&self, shed: HttpShed) {
        self.lock().exporter.http_shed.with_label_values(&[shed.reason()]).inc();
        tracing::warn!(reason = shed.reason(), "nissa.http.shed");
    }

    /// How many times Nissa's HTTP server shed `shed` so far.
    pub fn http_shed(&self, shed: HttpShed) -> u64 {
        self.lock().exporter.http_shed.with_label_values(&[shed.reason()]).get()
    }
}
