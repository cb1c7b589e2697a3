//! The seed lifecycle as an explicit state machine over Leyline's stages.
//!
//! Legal moves, as Esper-Lite's Kasmina: UNKNOWN → DORMANT; DORMANT → GERMINATED |
//! TERMINATED; GERMINATED, TRAINING, BLENDING, SHADOWING, PROBATIONARY each → the next
//! stage or CULLED; PROBATIONARY → FOSSILIZED; FOSSILIZED → TERMINATED; CULLED →
//! EMBARGOED → RESETTING → DORMANT. Anything else is an [`IllegalTransition`].

use crate::leyline::SeedLifecycleStage as Stage;

/// A move the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("seed lifecycle cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: Stage,
    pub to: Stage,
}

/// The stages `from` may move to.
pub fn successors(from: Stage) -> &'static [Stage] {
    match from {
        Stage::Unknown => &[Stage::Dormant],
        Stage::Dormant => &[Stage::Germinated, Stage::Terminated],
        Stage::Germinated => &[Stage::Training, Stage::Culled],
        Stage::Training => &[Stage::Blending, Stage::Culled],
        Stage::Blending => &[Stage::Shadowing, Stage::Culled],
        Stage::Shadowing => &[Stage::Probationary, Stage::Culled],
        Stage::Probationary => &[Stage::Fossilized, Stage::Culled],
        Stage::Fossilized => &[Stage::Terminated],
        Stage::Culled => &[Stage::Embargoed],
        Stage::Embargoed => &[Stage::Resetting],
        Stage::Resetting => &[Stage::Dormant],
        Stage::Terminated => &[],
    }
}

/// Checks one move.
pub fn check(from: Stage, to: Stage) -> Result<(), IllegalTransition> {
    if successors(from).contains(&to) { Ok(()) } else { Err(IllegalTransition { from, to }) }
}

/// Whether a seed in `stage` takes part in the forward pass.
pub fn is_active(stage: Stage) -> bool {
    matches!(stage, Stage::Training | Stage::Blending | Stage::Shadowing | Stage::Probationary | Stage::Fossilized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_is_reachable_from_unknown_and_terminated_is_final() {
        let mut reached = vec![Stage::Unknown];
        let mut frontier = vec![Stage::Unknown];
        while let Some(stage) = frontier.pop() {
            for &next in successors(stage) {
                if !reached.contains(&next) {
                    reached.push(next);
                    frontier.push(next);
                }
            }
        }
        assert_eq!(reached.len(), Stage::ALL.len());
        assert!(successors(Stage::Terminated).is_empty());
        assert_eq!(
            check(Stage::Dormant, Stage::Blending),
            Err(IllegalTransition { from: Stage::Dormant, to: Stage::Blending })
        );
    }
}
