//! Minimising a failing fault schedule read back from a failure file.
//!
//! proptest shrinks the schedules it generates inside a test, but a failure found
//! by `esper sweep` is a file: a seed and a plain schedule. This shrinker works on
//! that schedule directly. It pairs each fault with the one that ends it (a
//! partition with its repair, a crash with its restart — `Fault::ends`) and
//! then, greedily and until nothing more helps: removes whole episodes, halves
//! windows, and moves episodes later. A candidate is kept only when the run still
//! fails the *same* invariant, so the shrinker cannot wander off to a different bug.
//! Runs are deterministic, so the result is too.

use esper_sim::{FaultSchedule, Invariant, RunReport, ScheduledFault, TraceMode};

use super::failure::FailureRecord;
use crate::registry::{self, UnknownScenario};

/// A fault and, if it has one, the fault that ends it (the timeline draws one
/// band per episode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Episode {
    pub(crate) start: ScheduledFault,
    pub(crate) end: Option<ScheduledFault>,
}

impl Episode {
    fn length(&self) -> Option<u64> {
        self.end.as_ref().map(|end| end.at_ms - self.start.at_ms)
    }

    fn shifted(&self, by_ms: u64) -> Self {
        let shift = |scheduled: &ScheduledFault| ScheduledFault { at_ms: scheduled.at_ms + by_ms, ..scheduled.clone() };
        Self { start: shift(&self.start), end: self.end.as_ref().map(shift) }
    }
}

/// Pairs each fault with the first later fault that ends it and is not taken.
pub(crate) fn episodes(schedule: &FaultSchedule) -> Vec<Episode> {
    let faults = schedule.faults();
    let mut taken = vec![false; faults.len()];
    let mut episodes = Vec::new();
    for index in 0..faults.len() {
        if taken[index] {
            continue;
        }
        taken[index] = true;
        let start = faults[index].clone();
        let end = (index + 1..faults.len()).find(|&later| !taken[later] && start.fault.ends(&faults[later].fault));
        if let Some(end) = end {
            taken[end] = true;
        }
        episodes.push(Episode { start, end: end.map(|end| faults[end].clone()) });
    }
    episodes
}

fn schedule_of(episodes: &[Episode]) -> FaultSchedule {
    FaultSchedule::new(
        episodes.iter().flat_map(|episode| std::iter::once(episode.start.clone()).chain(episode.end.clone())).collect(),
    )
}

/// What the shrinker did.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing schedule found.
    pub schedule: FaultSchedule,
    /// Runs it took.
    pub runs: u32,
    /// Candidates it kept.
    pub steps: u32,
}

/// Shrinks `schedule` while `still_fails` holds, running it at most `max_runs` times.
pub fn shrink(schedule: &FaultSchedule, max_runs: u32, mut still_fails: impl FnMut(&FaultSchedule) -> bool) -> Shrunk {
    let horizon = schedule.faults().iter().map(|scheduled| scheduled.at_ms).max().unwrap_or(0);
    let mut current = episodes(schedule);
    let (mut runs, mut steps) = (0, 0);
    let mut attempt = |candidate: &[Episode], runs: &mut u32| {
        *runs += 1;
        still_fails(&schedule_of(candidate))
    };
    let mut progress = true;
    while progress && runs < max_runs {
        progress = false;
        // Remove whole episodes, last first (later faults are more often incidental).
        let mut index = current.len();
        while index > 0 && runs < max_runs {
            index -= 1;
            let mut candidate = current.clone();
            candidate.remove(index);
            if attempt(&candidate, &mut runs) {
                current = candidate;
                (progress, steps) = (true, steps + 1);
            }
        }
        // Halve windows, then move episodes later, each as far as still fails.
        for index in 0..current.len() {
            while runs < max_runs {
                let Some(length) = current[index].length().filter(|length| *length > 1) else { break };
                let mut candidate = current.clone();
                if let Some(end) = candidate[index].end.as_mut() {
                    end.at_ms -= length / 2;
                }
                if !attempt(&candidate, &mut runs) {
                    break;
                }
                current = candidate;
                (progress, steps) = (true, steps + 1);
            }
            while runs < max_runs {
                let shift = horizon.saturating_sub(current[index].start.at_ms) / 2;
                if shift == 0 {
                    break;
                }
                let mut candidate = current.clone();
                candidate[index] = candidate[index].shifted(shift);
                if !attempt(&candidate, &mut runs) {
                    break;
                }
                current = candidate;
                (progress, steps) = (true, steps + 1);
            }
        }
    }
    Shrunk { schedule: schedule_of(&current), runs, steps }
}

/// Shrinks a failure file's schedule while its recorded invariant still fails.
/// `first` is the run of the recorded schedule, which must fail that invariant;
/// `on_run` hears the run count after each run. Returns what the shrinker did
/// and the record of the smallest failing run — kept from the run that found it,
/// not run again.
pub fn shrink_record(
    record: &FailureRecord,
    first: RunReport,
    max_runs: u32,
    mut on_run: impl FnMut(u32),
) -> Result<(Shrunk, FailureRecord), ShrinkError> {
    registry::find(&record.scenario)?;
    let fails = |report: &RunReport| fails_the_same(record, report);
    if !fails(&first) {
        return Err(ShrinkError::DoesNotFail(record.invariant()));
    }
    let (mut smallest, mut runs) = (first, 0);
    let shrunk = shrink(&record.schedule, max_runs, |candidate| {
        // The scenario was found above, so the run cannot fail to start.
        let Ok(report) = record.run(candidate.clone(), TraceMode::Hash) else { return false };
        runs += 1;
        on_run(runs);
        let failed = fails(&report);
        if failed {
            // The shrinker keeps exactly the candidates that fail, so the last
            // failing run is the run of the schedule it returns.
            smallest = report;
        }
        failed
    });
    let minimal = FailureRecord::from_report(&smallest, record.swarm, record.kinds.clone())
        .ok_or(ShrinkError::DoesNotFail(record.invariant()))?;
    Ok((shrunk, minimal))
}

/// Whether `report` fails the invariant `record` failed — compared as the typed
/// value, so a candidate that fails a *different* invariant (a shrink drifting
/// to another bug) is refused.
pub fn fails_the_same(record: &FailureRecord, report: &RunReport) -> bool {
    report.outcome.invariant() == Some(record.invariant())
}

/// A failure record that cannot be shrunk.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error(transparent)]
    Scenario(#[from] UnknownScenario),
    #[error("the recorded schedule does not fail its invariant {0} on this commit; nothing to shrink")]
    DoesNotFail(Invariant),
}

/// How many faults a schedule has, counting an episode's start and end as one.
pub fn episode_count(schedule: &FaultSchedule) -> usize {
    episodes(schedule).len()
}

#[cfg(test)]
mod tests {
    use esper_sim::Fault;

    use super::*;

    fn at(at_ms: u64, fault: Fault) -> ScheduledFault {
        ScheduledFault { at_ms, fault }
    }

    fn crash(host: &str) -> Fault {
        Fault::Crash { host: host.to_owned() }
    }

    fn restart(host: &str) -> Fault {
        Fault::Restart { host: host.to_owned() }
    }

    #[test]
    fn keeps_only_the_episode_that_matters_shortened_and_later() {
        let noise = |at_ms| at(at_ms, Fault::Partition { a: "a".into(), b: "b".into() });
        let schedule = FaultSchedule::new(vec![
            noise(10),
            at(100, crash("tamiyo")),
            at(150, Fault::Repair { a: "a".into(), b: "b".into() }),
            at(900, restart("tamiyo")),
            at(1_000, crash("redis")),
            at(1_200, restart("redis")),
        ]);
        assert_eq!(episode_count(&schedule), 3);
        // The "bug": Tamiyo down for at least 200 ms at any time.
        let fails = |candidate: &FaultSchedule| {
            let faults = candidate.faults();
            faults.iter().any(|start| {
                start.fault == crash("tamiyo")
                    && faults.iter().any(|end| end.fault == restart("tamiyo") && end.at_ms >= start.at_ms + 200)
            })
        };
        let shrunk = shrink(&schedule, 500, fails);
        assert_eq!(episode_count(&shrunk.schedule), 1, "{}", shrunk.schedule);
        let faults = shrunk.schedule.faults();
        assert_eq!(faults[0].fault, crash("tamiyo"));
        let length = faults[1].at_ms - faults[0].at_ms;
        assert!((200..400).contains(&length), "halved down towards 200 ms: {}", shrunk.schedule);
        assert!(faults[0].at_ms > 100, "moved later: {}", shrunk.schedule);
        assert!(fails(&shrunk.schedule));
    }

    fn report_failing(invariant: Invariant) -> RunReport {
        RunReport {
            scenario: "control-loop".to_owned(),
            seed: 7,
            schedule: FaultSchedule::new(vec![at(10, crash("tamiyo")), at(20, restart("tamiyo"))]),
            planted: esper_core::planted::Planted::NONE,
            hosts: vec!["tamiyo".to_owned()],
            hash: "0".repeat(64),
            events: 1,
            sim_elapsed: std::time::Duration::from_secs(1),
            outcome: esper_sim::Outcome::Failed { violation: invariant.violated("seen") },
            lines: Vec::new(),
            tail: Vec::new(),
            tally: std::collections::BTreeMap::new(),
            cargo_features: &[],
        }
    }

    #[test]
    fn a_shrink_that_drifts_to_another_invariant_is_refused() {
        let found = report_failing(Invariant::WalAcknowledged);
        let record = FailureRecord::from_report(&found, true, Vec::new()).expect("a failed run");
        assert!(fails_the_same(&record, &found));
        // A candidate that fails, but a different invariant, does not count as
        // still failing — even with the very same detail text.
        assert!(!fails_the_same(&record, &report_failing(Invariant::Liveness)));
        let drifted = shrink_record(&record, report_failing(Invariant::Liveness), 10, |_| {});
        assert!(matches!(drifted, Err(ShrinkError::DoesNotFail(Invariant::WalAcknowledged))), "{drifted:?}");
    }

    #[test]
    fn stops_at_its_run_budget() {
        let schedule = FaultSchedule::new((0..20).map(|i| at(i * 10, crash("tamiyo"))).collect());
        let shrunk = shrink(&schedule, 5, |_| true);
        assert_eq!(shrunk.runs, 5);
    }
}
