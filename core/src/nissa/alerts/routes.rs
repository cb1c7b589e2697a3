//! Notification routes. Slack, PagerDuty and email are stubs: each notification
//! is recorded (bounded, oldest out) for `/metrics/summary` and counted in
//! `esper_alert_notifications_total{route,state}`, so tests and operators can see
//! exactly what would have been sent.

use std::collections::{BTreeMap, VecDeque};

use super::Severity;

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Slack,
    #[serde(rename = "pagerduty")]
    PagerDuty,
    Email,
}

impl Route {
    /// The route's name in labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::PagerDuty => "pagerduty",
            Self::Email => "email",
        }
    }
}

/// Whether a notification opens (or escalates) an alert or resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    Firing,
    Resolved,
}

impl NotificationState {
    /// The state's name in labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One notification, as a route stub received it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Notification {
    pub alert: String,
    pub severity: Severity,
    pub route: Route,
    pub state: NotificationState,
    /// Unix ms it was sent.
    pub at_ms: u64,
    /// The sample that caused it.
    pub value: f64,
}

/// The stubs' record of what they were sent.
#[derive(Debug, Clone, Default)]
pub struct RouteLog {
    capacity: usize,
    recent: VecDeque<Notification>,
    counts: BTreeMap<(Route, NotificationState), u64>,
}

impl RouteLog {
    /// A log keeping the last `capacity` notifications (counts are kept forever).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), ..Self::default() }
    }

    /// Records `notification`.
    pub fn send(&mut self, notification: Notification) {
        tracing::info!(
            alert = %notification.alert,
            route = notification.route.as_str(),
            state = notification.state.as_str(),
            severity = notification.severity.as_str(),
            "nissa: notification"
        );
        *self.counts.entry((notification.route, notification.state)).or_default() += 1;
        self.recent.push_back(notification);
        while self.recent.len() > self.capacity {
            self.recent.pop_front();
        }
    }

    /// The most recent notifications, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Notification> {
        self.recent.iter()
    }

    /// How many notifications each route got, by state.
    pub fn counts(&self) -> &BTreeMap<(Route, NotificationState), u64> {
        &self.counts
    }
}
