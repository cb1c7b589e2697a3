//! The `seed-lifecycle` invariant: Kasmina's seeds move only as Esper-Lite's
//! lifecycle allows, and its telemetry counts as active exactly the seeds that
//! take part in the forward pass.
//!
//! The oracle is this file's own table, written from Esper-Lite's Kasmina
//! (`kasmina/lifecycle.py`, and the reference's stage list) rather than read from
//! `esper_core::kasmina::lifecycle`: a wrong edge or a wrong notion of "active" in
//! Kasmina is then a disagreement, not Kasmina agreeing with itself.
//!
//! It reads Kasmina's telemetry batch by batch as `SeedManager::telemetry` hands it
//! over, before the bus (where a fault may rightly drop a packet): each
//! `seed_stage` event must be a legal move from where the seed's earlier events
//! left it; each seed's `kasmina.seed.stage` must be where its events took it; and
//! `kasmina.seeds.active` must count the seeds reported in TRAINING … FOSSILIZED.
//! When Kasmina counted dropped events (`kasmina.events.dropped` moved) the moves
//! of that batch are not all there: the watch takes the reported stages as they
//! are and judges the next batch.

use std::collections::BTreeMap;

use esper_core::leyline::{MetricPoint, SeedLifecycleStage as Stage, TelemetryPacket};
use esper_sim::{Invariant, Violation};

/// Every legal move, as Esper-Lite's Kasmina allows it.
const MOVES: [(Stage, Stage); 17] = [
    (Stage::Unknown, Stage::Dormant),
    (Stage::Dormant, Stage::Germinated),
    (Stage::Dormant, Stage::Terminated),
    (Stage::Germinated, Stage::Training),
    (Stage::Training, Stage::Blending),
    (Stage::Blending, Stage::Shadowing),
    (Stage::Shadowing, Stage::Probationary),
    (Stage::Probationary, Stage::Fossilized),
    (Stage::Germinated, Stage::Culled),
    (Stage::Training, Stage::Culled),
    (Stage::Blending, Stage::Culled),
    (Stage::Shadowing, Stage::Culled),
    (Stage::Probationary, Stage::Culled),
    (Stage::Fossilized, Stage::Terminated),
    (Stage::Culled, Stage::Embargoed),
    (Stage::Embargoed, Stage::Resetting),
    (Stage::Resetting, Stage::Dormant),
];

/// Stages whose seed takes part in the forward pass.
pub(crate) const ACTIVE: [Stage; 5] =
    [Stage::Training, Stage::Blending, Stage::Shadowing, Stage::Probationary, Stage::Fossilized];

/// Whether the lifecycle allows `from` → `to`.
pub(crate) fn legal(from: Stage, to: Stage) -> bool {
    MOVES.contains(&(from, to))
}

/// What the watch knows of each seed, across the batches it has read.
#[derive(Debug, Default)]
pub struct LifecycleWatch {
    stages: BTreeMap<String, Stage>,
    events_dropped: f64,
}

impl LifecycleWatch {
    /// Judges one batch of Kasmina's telemetry (one `SeedManager::telemetry` call).
    pub fn observe(&mut self, batch: &[TelemetryPacket]) -> Result<(), Violation> {
        let points = || batch.iter().flat_map(|packet| &packet.metrics);
        let dropped = points().find(|p| p.name == "kasmina.events.dropped").map_or(self.events_dropped, |p| p.value);
        let complete = dropped == self.events_dropped;
        self.events_dropped = dropped;
        for event in batch.iter().flat_map(|packet| &packet.events).filter(|e| e.description == "seed_stage") {
            let seed = event.attributes.get("seed").cloned().unwrap_or_default();
            let named = event.attributes.get("stage").map(String::as_str).unwrap_or_default();
            let Some(to) = Stage::ALL.iter().copied().find(|stage| stage.as_str_name() == named) else {
                return Err(violated(format!("seed {seed:?}: a seed_stage event names no stage ({named:?})")));
            };
            let from = self.stages.get(&seed).copied().unwrap_or(Stage::Unknown);
            if complete && !legal(from, to) {
                return Err(violated(format!("seed {seed:?} moved {from} → {to}, which the lifecycle does not allow")));
            }
            self.stages.insert(seed, to);
        }
        let mut active = 0_u32;
        for point in points().filter(|p| p.name == "kasmina.seed.stage") {
            let (seed, stage) = reported_stage(point)?;
            let moved_to = self.stages.insert(seed.clone(), stage);
            if complete && moved_to != Some(stage) {
                return Err(violated(format!(
                    "seed {seed:?} is reported in {stage}, but its events took it to {moved_to:?}"
                )));
            }
            active += u32::from(ACTIVE.contains(&stage));
        }
        match points().find(|p| p.name == "kasmina.seeds.active") {
            Some(point) if point.value != f64::from(active) => Err(violated(format!(
                "kasmina.seeds.active is {}, but {active} reported seed(s) are in a forward-pass stage",
                point.value
            ))),
            _ => Ok(()),
        }
    }
}

fn reported_stage(point: &MetricPoint) -> Result<(String, Stage), Violation> {
    let seed = point.attributes.get("seed").cloned().unwrap_or_default();
    // The value is the stage's wire number, exactly representable.
    #[allow(clippy::cast_possible_truncation)]
    let number = point.value as i32;
    Stage::try_from(number)
        .map(|stage| (seed.clone(), stage))
        .map_err(|_| violated(format!("seed {seed:?}: kasmina.seed.stage {} is no stage", point.value)))
}

fn violated(detail: String) -> Violation {
    Invariant::SeedLifecycle.violated(detail)
}

#[cfg(test)]
mod tests {
    use esper_core::leyline::{TelemetryEvent, TelemetryLevel};

    use super::*;

    fn batch(moves: &[(&str, Stage)], reported: &[(&str, Stage)], active: u32) -> Vec<TelemetryPacket> {
        let events = moves
            .iter()
            .map(|(seed, stage)| {
                let attributes = [("seed", (*seed).to_owned()), ("stage", stage.as_str_name().to_owned())];
                TelemetryEvent::named("seed_stage", TelemetryLevel::Info, &attributes)
            })
            .collect();
        let mut metrics: Vec<MetricPoint> = reported
            .iter()
            .map(|(seed, stage)| {
                let mut point = MetricPoint::new("kasmina.seed.stage", f64::from(i32::from(*stage)), "");
                point.attributes.insert("seed".to_owned(), (*seed).to_owned());
                point
            })
            .collect();
        metrics.push(MetricPoint::new("kasmina.seeds.active", f64::from(active), ""));
        vec![TelemetryPacket { events, metrics, ..TelemetryPacket::default() }]
    }

    #[test]
    fn a_seed_growing_up_passes_and_each_kind_of_lie_fails() {
        let mut watch = LifecycleWatch::default();
        let grown = [("s1", Stage::Dormant), ("s1", Stage::Germinated), ("s1", Stage::Training)];
        assert!(watch.observe(&batch(&grown, &[("s1", Stage::Training)], 1)).is_ok());
        // An illegal move: TRAINING straight back to GERMINATED.
        let error = LifecycleWatch { stages: watch.stages.clone(), ..LifecycleWatch::default() }
            .observe(&batch(&[("s1", Stage::Germinated)], &[("s1", Stage::Germinated)], 0))
            .expect_err("illegal move");
        assert!(error.to_string().contains("TRAINING → SEED_STAGE_GERMINATED"), "{error}");
        // A reported stage its events never reached.
        let error = LifecycleWatch { stages: watch.stages.clone(), ..LifecycleWatch::default() }
            .observe(&batch(&[], &[("s1", Stage::Blending)], 1))
            .expect_err("unexplained stage");
        assert!(error.to_string().contains("events took it to"), "{error}");
        // An active count that includes a culled seed.
        let culled = [("s1", Stage::Culled)];
        let error = watch.observe(&batch(&culled, &culled, 1)).expect_err("culled counted active");
        assert_eq!(error.invariant, Invariant::SeedLifecycle);
    }
}
