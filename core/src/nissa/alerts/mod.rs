//! Nissa's alerting: rules ([`AlertRule`], the [`default_rules`] catalog), the
//! [`AlertEngine`] that evaluates them on every ingested sample, and the
//! notification [`RouteLog`] (Slack, PagerDuty and email stubs); [`unfed_alerts`]
//! names the rules a `/metrics` scrape has no series for.

mod catalog;
mod coverage;
mod engine;
mod routes;
mod rule;

pub use catalog::{ALERT_NAMES, PrefetchRule, TrainingLatencyRule, default_rules};
pub use coverage::{UnfedAlert, unfed_alerts};
pub use engine::{ActiveAlert, AlertEngine, Transition};
pub use routes::{Notification, NotificationState, Route, RouteLog};
pub use rule::{AlertRule, AlertRuleError, Comparator};

/// How bad a firing alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    /// The level's name in labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}
