//! Alert checks: for each alert rule, synthetic telemetry that must fire it and
//! normal telemetry that must clear it, checked sample by sample through
//! Nissa's HTTP summary (Esper-Lite's `run_fault_drills.py`, but end to end:
//! published on Oona, ingested by a running Nissa, read back over HTTP).
//!
//! A check passes when the alert is quiet after each of the first
//! `for_count − 1` bad samples and firing right after the `for_count`-th — it
//! fires in the very evaluation its condition is met — and, fed normal samples,
//! is still firing after each of the first `clear_count − 1` and resolved right
//! after the `clear_count`-th.

use std::fmt;

use esper_core::leyline::{BusEnvelope, MessagePriority, MetricPoint, TelemetryPacket};
use esper_core::net::Connector;
use esper_core::nissa::alerts::{AlertRule, Comparator};
use esper_core::oona::{OonaClient, PublishOutcome};
use rand::RngCore;

use super::probe::{Probe, firing, telemetry_packets};

trace_target!("nissa::drills");

/// One check: the samples to feed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCheck {
    pub alert: String,
    pub metric: String,
    /// Samples past every threshold, `for_count` of them.
    pub bad: Vec<f64>,
    /// Samples on the good side of `clear_at`, `clear_count` of them.
    pub normal: Vec<f64>,
}

/// The checks for `rules`.
pub fn alert_checks(rules: &[AlertRule]) -> Vec<AlertCheck> {
    rules
        .iter()
        .map(|rule| {
            let worst = [rule.warning, rule.critical].into_iter().flatten();
            let (bad, normal) = match rule.comparator {
                Comparator::Above => (worst.fold(f64::MIN, f64::max) * 1.5 + 1.0, rule.clear_at / 2.0),
                Comparator::Below => (worst.fold(f64::MAX, f64::min) / 2.0 - 1.0, rule.clear_at * 2.0 + 1.0),
            };
            AlertCheck {
                alert: rule.name.clone(),
                metric: rule.metric.clone(),
                bad: vec![bad; rule.for_count as usize],
                normal: vec![normal; rule.clear_count as usize],
            }
        })
        .collect()
}

/// What a check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCheckResult {
    pub alert: String,
    /// The bad sample (1-based) after which the alert was first seen firing.
    pub fired_after: Option<usize>,
    /// Bad samples the rule needs.
    pub for_count: usize,
    /// Severity it fired at.
    pub severity: Option<String>,
    /// The normal sample after which it was first seen resolved.
    pub cleared_after: Option<usize>,
    /// Normal samples the rule needs.
    pub clear_count: usize,
    /// Notifications the route stubs received for it (firing and resolved).
    pub notifications: usize,
}

impl AlertCheckResult {
    /// Fired exactly at `for_count`, cleared exactly at `clear_count`, notified.
    pub fn passed(&self) -> bool {
        self.fired_after == Some(self.for_count)
            && self.cleared_after == Some(self.clear_count)
            && self.notifications > 0
    }
}

impl fmt::Display for AlertCheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |found: Option<usize>| found.map_or_else(|| "never".to_owned(), |n| format!("after sample {n}"));
        write!(
            f,
            "{:<32} {}  fired {} (needs {}) as {}, cleared {} (needs {}), {} notifications",
            self.alert,
            if self.passed() { "PASS" } else { "FAIL" },
            at(self.fired_after),
            self.for_count,
            self.severity.as_deref().unwrap_or("-"),
            at(self.cleared_after),
            self.clear_count,
            self.notifications,
        )
    }
}

/// Publishes telemetry and watches Nissa react.
#[derive(Debug)]
pub struct AlertRig<C: Connector, R: RngCore> {
    pub bus: OonaClient<C, R>,
    pub probe: Probe<C>,
    /// Telemetry packets Nissa has ingested so far (all sources).
    pub ingested: u64,
    sequence: u64,
}

impl<C: Connector, R: RngCore> AlertRig<C, R> {
    /// A rig starting from Nissa's current count.
    pub async fn new(bus: OonaClient<C, R>, probe: Probe<C>) -> Result<Self, String> {
        let ingested = telemetry_packets(&probe.summary().await?);
        Ok(Self { bus, probe, ingested, sequence: 0 })
    }

    /// Publishes one telemetry packet from the `drills` host with `metrics` and waits until
    /// Nissa has ingested it; returns the summary right after.
    pub async fn feed(&mut self, metrics: &[(&str, f64)]) -> Result<serde_json::Value, String> {
        self.sequence += 1;
        let packet = TelemetryPacket {
            packet_id: format!("drill-{}", self.sequence),
            source_subsystem: "drills".to_owned(),
            metrics: metrics.iter().map(|(name, value)| MetricPoint::new(*name, *value, "")).collect(),
            ..TelemetryPacket::default()
        };
        self.publish(&BusEnvelope::wrap(&packet, MessagePriority::Normal)).await?;
        self.ingested += 1;
        self.probe.wait_ingested(self.ingested).await
    }

    /// Publishes `envelope`, requiring Redis to take it.
    pub async fn publish(&mut self, envelope: &BusEnvelope) -> Result<(), String> {
        match self.bus.publish(envelope).await {
            Ok(PublishOutcome::Published { .. }) => Ok(()),
            Ok(refused) => Err(format!("publish refused: {refused:?}")),
            Err(error) => Err(format!("publish failed: {error}")),
        }
    }

    /// Runs one check.
    pub async fn run(&mut self, check: &AlertCheck) -> Result<AlertCheckResult, String> {
        let mut result = AlertCheckResult {
            alert: check.alert.clone(),
            fired_after: None,
            for_count: check.bad.len(),
            severity: None,
            cleared_after: None,
            clear_count: check.normal.len(),
            notifications: 0,
        };
        let before = self.probe.summary().await?;
        if firing(&before, &check.alert) {
            return Err(format!("drill {}: the alert is already firing", check.alert));
        }
        for (n, value) in check.bad.iter().enumerate() {
            let summary = self.feed(&[(&check.metric, *value)]).await?;
            if firing(&summary, &check.alert) && result.fired_after.is_none() {
                result.fired_after = Some(n + 1);
                result.severity = summary["alerts"][&check.alert]["severity"].as_str().map(str::to_owned);
            }
        }
        for (n, value) in check.normal.iter().enumerate() {
            let summary = self.feed(&[(&check.metric, *value)]).await?;
            if !firing(&summary, &check.alert) && result.cleared_after.is_none() {
                result.cleared_after = Some(n + 1);
                result.notifications = notifications_for(&summary, &check.alert);
            }
        }
        tracing::info!(target: TRACE_TARGET, alert = %check.alert, passed = result.passed(), "nissa drill");
        Ok(result)
    }
}

/// How many notifications in a summary's log name `alert`.
fn notifications_for(summary: &serde_json::Value, alert: &str) -> usize {
    summary["notifications"].as_array().map_or(0, |log| log.iter().filter(|n| n["alert"] == alert).count())
}
