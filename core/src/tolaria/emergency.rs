//! Tolaria's emergency ladder: L1 notice → L2 elevated → L3 conservative → L4 halt.
//!
//! Escalation never lowers the level; a good epoch resets it to L1. Each escalation
//! produces an `EmergencySignal` for the Oona emergency stream; L4 also halts training.

use crate::leyline::{EmergencyLevel, EmergencySignal, Timestamp};

/// The current level and what it has done.
#[derive(Debug, Clone)]
pub struct EmergencyController {
    run_id: String,
    level: EmergencyLevel,
    broadcasts_total: u64,
    broadcast_failures_total: u64,
    halts_total: u64,
}

impl EmergencyController {
    /// Starts at L1 notice.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            level: EmergencyLevel::Notice,
            broadcasts_total: 0,
            broadcast_failures_total: 0,
            halts_total: 0,
        }
    }

    /// Raises the level to `level` if that is higher, returning the signal to
    /// broadcast; a lower or equal level changes nothing and returns `None`.
    pub fn escalate(&mut self, level: EmergencyLevel, reason: &str, now_ms: u64) -> Option<EmergencySignal> {
        if level <= self.level {
            return None;
        }
        self.level = level;
        if level == EmergencyLevel::Halt {
            self.halts_total += 1;
        }
        Some(EmergencySignal {
            version: 1,
            level: level.into(),
            reason: reason.to_owned(),
            origin: "tolaria".to_owned(),
            triggered_at: Some(Timestamp::from_millis(now_ms)),
            run_id: self.run_id.clone(),
            ..EmergencySignal::default()
        })
    }

    /// Back to L1 after a good epoch (a halt is final and stays).
    pub fn reset(&mut self) {
        if self.level != EmergencyLevel::Halt {
            self.level = EmergencyLevel::Notice;
        }
    }

    /// Counts the outcome of one broadcast.
    pub fn record_broadcast(&mut self, delivered: bool) {
        if delivered {
            self.broadcasts_total += 1;
        } else {
            self.broadcast_failures_total += 1;
        }
    }

    /// The current level.
    pub fn level(&self) -> EmergencyLevel {
        self.level
    }

    /// True once L4 has been reached.
    pub fn halted(&self) -> bool {
        self.level == EmergencyLevel::Halt
    }

    /// `(broadcasts_total, broadcast_failures_total, halts_total)`.
    pub fn totals(&self) -> (u64, u64, u64) {
        (self.broadcasts_total, self.broadcast_failures_total, self.halts_total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_only_rises_and_halt_is_final() {
        let mut emergency = EmergencyController::new("run-1");
        let signal = emergency.escalate(EmergencyLevel::Elevated, "epoch_budget", 5).expect("raised");
        assert_eq!((signal.level, signal.origin.as_str()), (EmergencyLevel::Elevated as i32, "tolaria"));
        assert!(emergency.escalate(EmergencyLevel::Notice, "lower", 6).is_none());
        emergency.reset();
        assert_eq!(emergency.level(), EmergencyLevel::Notice);
        assert!(emergency.escalate(EmergencyLevel::Halt, "rollback_deadline", 7).is_some());
        emergency.reset();
        assert!(emergency.halted(), "a halt survives reset");
        assert_eq!(emergency.totals().2, 1);
    }
}
