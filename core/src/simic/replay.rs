//! Field reports as experiences for off-policy training.
//!
//! Esper-Lite's reward: `−loss_delta` when the report's loss moved, else `1` for
//! a SUCCESS and `−1` for anything else (its `DEGRADED` outcome does not exist in
//! the contract; every non-SUCCESS outcome takes the `−1`). Only germinations of a
//! candidate blueprint teach the head anything; other reports are skipped. The
//! behaviour probability is the `policy_probability` a learned head recorded, or,
//! for reports of the rule's rotation, uniform over the candidates.

use std::collections::VecDeque;

use crate::leyline::{FieldReport, FieldReportOutcome};
use crate::tamiyo::learned::{FEATURES, features};
use crate::tamiyo::outcome::POLICY_PROBABILITY;

/// One germination and how it went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Experience {
    pub features: [f32; FEATURES],
    /// Index of the germinated blueprint among the head's candidates.
    pub action: usize,
    pub reward: f32,
    /// Probability the behaviour policy chose `action` with, in (0, 1].
    pub behaviour_probability: f32,
    /// `issued_at` of the report, Unix ms (for the TTL).
    pub issued_at_ms: u64,
}

/// Esper-Lite's reward of a report (see the module docs).
pub fn reward_of(report: &FieldReport) -> f32 {
    match report.metrics.get("loss_delta") {
        Some(delta) if *delta != 0.0 && delta.is_finite() => -delta,
        _ if report.outcome == i32::from(FieldReportOutcome::Success) => 1.0,
        _ => -1.0,
    }
}

/// The experience in `report`, if it is a germination of one of `candidates`.
pub fn experience_of(report: &FieldReport, candidates: &[String]) -> Option<Experience> {
    let action = candidates.iter().position(|id| *id == report.blueprint_id)?;
    let validation_loss = *report.metrics.get("validation_loss")?;
    let uniform = 1.0 / candidates.len() as f32;
    let behaviour_probability = report
        .metrics
        .get(POLICY_PROBABILITY)
        .copied()
        .filter(|p| p.is_finite() && *p > 0.0 && *p <= 1.0)
        .unwrap_or(uniform);
    Some(Experience {
        features: features(validation_loss),
        action,
        reward: reward_of(report),
        behaviour_probability,
        issued_at_ms: report.issued_at.map_or(0, |at| at.as_millis()),
    })
}

/// The newest experiences: at most `capacity` (1024), none older than `ttl_ms` (24 h).
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    capacity: usize,
    ttl_ms: u64,
    experiences: VecDeque<Experience>,
    skipped: u64,
}

impl ReplayBuffer {
    /// An empty buffer.
    pub fn new(capacity: usize, ttl_ms: u64) -> Self {
        assert!(capacity > 0, "a replay buffer holds at least one experience");
        Self { capacity, ttl_ms, experiences: VecDeque::with_capacity(capacity), skipped: 0 }
    }

    /// Adds the experience in `report` (evicting the oldest when full); returns
    /// whether it held one.
    pub fn push(&mut self, report: &FieldReport, candidates: &[String]) -> bool {
        let Some(experience) = experience_of(report, candidates) else {
            self.skipped += 1;
            return false;
        };
        if self.experiences.len() == self.capacity {
            self.experiences.pop_front();
        }
        self.experiences.push_back(experience);
        true
    }

    /// Drops experiences issued more than the TTL before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        self.experiences.retain(|e| now_ms.saturating_sub(e.issued_at_ms) <= self.ttl_ms);
    }

    /// The experiences, oldest first.
    pub fn experiences(&self) -> &VecDeque<Experience> {
        &self.experiences
    }

    /// Reports that held no usable experience.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}
