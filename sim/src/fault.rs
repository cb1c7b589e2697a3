//! Faults as data.
//!
//! A [`FaultSchedule`] is an ordered list of `(sim time, fault)` pairs. Because it is
//! plain data it can be drawn from a seed, printed next to a failure, saved as JSON,
//! replayed exactly and (with the drills issue) shrunk by proptest. The world applies
//! each fault between simulation steps, once sim time reaches it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One fault. Host names are the world's host names (`tolaria`, `redis`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Cut the link between two hosts in both directions; in-flight messages are lost.
    Partition { a: String, b: String },
    /// Restore a link cut by [`Fault::Partition`].
    Repair { a: String, b: String },
}

impl Fault {
    /// The host names this fault refers to, so the world can reject a schedule that
    /// names a host it does not have before the run starts.
    pub fn hosts(&self) -> [&str; 2] {
        match self {
            Self::Partition { a, b } | Self::Repair { a, b } => [a, b],
        }
    }

    /// Stable snake_case name of the fault kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Partition { .. } => "partition",
            Self::Repair { .. } => "repair",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Partition { a, b } => write!(formatter, "partition {a} <-> {b}"),
            Self::Repair { a, b } => write!(formatter, "repair {a} <-> {b}"),
        }
    }
}

/// A fault and the sim time (milliseconds since the world started) it strikes at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    /// Sim time in milliseconds.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// Faults ordered by time; faults at the same time keep their insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSchedule {
    faults: Vec<ScheduledFault>,
}

/// A schedule that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FaultScheduleError {
    /// The JSON is malformed or does not describe a schedule.
    #[error("fault schedule is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl FaultSchedule {
    /// A schedule from faults in any order; sorted stably by time.
    pub fn new(mut faults: Vec<ScheduledFault>) -> Self {
        faults.sort_by_key(|scheduled| scheduled.at_ms);
        Self { faults }
    }

    /// The faults, in the order they strike.
    pub fn faults(&self) -> &[ScheduledFault] {
        &self.faults
    }

    /// Whether the schedule is empty.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Parses a schedule and re-sorts it, so hand-edited files cannot break ordering.
    pub fn from_json(text: &str) -> Result<Self, FaultScheduleError> {
        let parsed: Self = serde_json::from_str(text)?;
        Ok(Self::new(parsed.faults))
    }

    /// Compact JSON, as saved next to a failure.
    pub fn to_json(&self) -> String {
        // Serializing plain owned strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for FaultSchedule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.faults.is_empty() {
            return write!(formatter, "(no faults)");
        }
        for (index, scheduled) in self.faults.iter().enumerate() {
            let separator = if index == 0 { "" } else { "; " };
            write!(formatter, "{separator}t={}ms {}", scheduled.at_ms, scheduled.fault)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(at_ms: u64) -> ScheduledFault {
        ScheduledFault { at_ms, fault: Fault::Partition { a: "tolaria".into(), b: "tamiyo".into() } }
    }

    #[test]
    fn sorts_by_time_and_round_trips_through_json() {
        let repair = ScheduledFault { at_ms: 5, fault: Fault::Repair { a: "tolaria".into(), b: "tamiyo".into() } };
        let schedule = FaultSchedule::new(vec![partition(9), repair.clone()]);
        assert_eq!(schedule.faults()[0], repair);
        let json = schedule.to_json();
        assert_eq!(FaultSchedule::from_json(&json).expect("round trip"), schedule);
        assert_eq!(schedule.to_string(), "t=5ms repair tolaria <-> tamiyo; t=9ms partition tolaria <-> tamiyo");
    }

    #[test]
    fn rejects_unknown_fault_kinds_with_a_typed_error() {
        let error = FaultSchedule::from_json(r#"{"faults":[{"at_ms":1,"fault":{"kind":"meteor"}}]}"#)
            .expect_err("unknown kind must not parse");
        assert!(error.to_string().contains("meteor"), "{error}");
    }
}
