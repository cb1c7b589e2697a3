//! Comparing the engine's transitions with the oracle's schedule, change by change.
//!
//! The first place the two sequences part is the finding, phrased as what went
//! wrong from the operator's side — fired late or early, fired without cause, never
//! fired, cleared early or late, never cleared — with the rule and both evaluations.

use super::oracle::{Change, ChangeKind};

/// Where `actual` (the engine) first departs from `expected` (the oracle) for
/// `alert`, in words; `None` when they agree exactly.
pub fn first_mismatch(alert: &str, expected: &[Change], actual: &[Change]) -> Option<String> {
    let position = (0..expected.len().max(actual.len())).find(|&at| expected.get(at) != actual.get(at))?;
    let what = match (expected.get(position), actual.get(position)) {
        (Some(want), Some(got)) => differing(*want, *got),
        (Some(want), None) => match want.kind {
            ChangeKind::Fired(severity) => {
                format!("never fired; the oracle expects it at {} in evaluation {}", severity.as_str(), want.evaluation)
            }
            ChangeKind::Cleared => {
                format!("never cleared; the oracle expects it to clear in evaluation {}", want.evaluation)
            }
        },
        (None, Some(got)) => match got.kind {
            ChangeKind::Fired(severity) => {
                format!(
                    "fired without cause at {} in evaluation {}; the oracle expects no change",
                    severity.as_str(),
                    got.evaluation
                )
            }
            ChangeKind::Cleared => {
                format!("cleared without cause in evaluation {}; the oracle expects no change", got.evaluation)
            }
        },
        (None, None) => return None,
    };
    Some(format!("alert {alert} {what}"))
}

/// Two changes at the same position that differ.
fn differing(want: Change, got: Change) -> String {
    let (expected, actual) = (want.evaluation, got.evaluation);
    let timing = |verb: &str| {
        let when = if actual > expected { "late" } else { "early" };
        format!("{verb} {when}: in evaluation {actual}, the oracle expects evaluation {expected}")
    };
    match (want.kind, got.kind) {
        (ChangeKind::Fired(wanted), ChangeKind::Fired(fired)) if wanted == fired => timing("fired"),
        (ChangeKind::Fired(wanted), ChangeKind::Fired(fired)) => format!(
            "fired at {} in evaluation {actual}, the oracle expects {} in evaluation {expected}",
            fired.as_str(),
            wanted.as_str()
        ),
        (ChangeKind::Cleared, ChangeKind::Cleared) => timing("cleared"),
        (ChangeKind::Cleared, ChangeKind::Fired(fired)) => format!(
            "fired without cause at {} in evaluation {actual}; the oracle expects it to clear in evaluation {expected}",
            fired.as_str()
        ),
        (ChangeKind::Fired(wanted), ChangeKind::Cleared) => format!(
            "cleared early in evaluation {actual}; the oracle expects it still firing and at {} in evaluation {expected}",
            wanted.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use esper_core::nissa::alerts::Severity::{Critical, Warning};

    use super::*;

    fn fired(evaluation: u64) -> Change {
        Change { evaluation, kind: ChangeKind::Fired(Warning) }
    }

    fn cleared(evaluation: u64) -> Change {
        Change { evaluation, kind: ChangeKind::Cleared }
    }

    /// The oracle's schedule every case below is judged against: fire in 2, clear in 6.
    const EXPECTED: fn() -> [Change; 2] = || [fired(2), cleared(6)];

    fn verdict(actual: &[Change]) -> Option<String> {
        first_mismatch("training_latency_high", &EXPECTED(), actual)
    }

    #[test]
    fn the_same_sequence_passes() {
        assert_eq!(verdict(&EXPECTED()), None);
    }

    #[test]
    fn an_engine_that_fires_one_evaluation_late_fails_naming_both_evaluations() {
        let detail = verdict(&[fired(3), cleared(6)]).expect("a mismatch");
        assert_eq!(detail, "alert training_latency_high fired late: in evaluation 3, the oracle expects evaluation 2");
    }

    #[test]
    fn an_engine_that_fires_early_fails() {
        let detail = verdict(&[fired(1), cleared(6)]).expect("a mismatch");
        assert_eq!(detail, "alert training_latency_high fired early: in evaluation 1, the oracle expects evaluation 2");
    }

    #[test]
    fn an_alert_without_cause_fails() {
        let detail = first_mismatch("oona_queue_depth", &[], &[fired(4)]).expect("a mismatch");
        assert_eq!(
            detail,
            "alert oona_queue_depth fired without cause at warning in evaluation 4; the oracle expects no change"
        );
        let again = verdict(&[fired(2), fired(5)]).expect("a mismatch");
        assert!(
            again.contains("fired without cause at warning in evaluation 5") && again.contains("clear in evaluation 6"),
            "{again}"
        );
    }

    #[test]
    fn an_alert_that_never_clears_fails() {
        let detail = verdict(&[fired(2)]).expect("a mismatch");
        assert_eq!(detail, "alert training_latency_high never cleared; the oracle expects it to clear in evaluation 6");
    }

    #[test]
    fn an_alert_that_clears_early_or_late_fails() {
        let early = verdict(&[fired(2), cleared(5)]).expect("a mismatch");
        assert_eq!(
            early,
            "alert training_latency_high cleared early: in evaluation 5, the oracle expects evaluation 6"
        );
        let late = verdict(&[fired(2), cleared(8)]).expect("a mismatch");
        assert_eq!(late, "alert training_latency_high cleared late: in evaluation 8, the oracle expects evaluation 6");
    }

    #[test]
    fn an_alert_that_never_fires_or_fires_at_the_wrong_level_fails() {
        let never = verdict(&[]).expect("a mismatch");
        assert_eq!(never, "alert training_latency_high never fired; the oracle expects it at warning in evaluation 2");
        let level =
            verdict(&[Change { evaluation: 2, kind: ChangeKind::Fired(Critical) }, cleared(6)]).expect("a mismatch");
        assert!(level.contains("fired at critical in evaluation 2, the oracle expects warning"), "{level}");
    }
}
