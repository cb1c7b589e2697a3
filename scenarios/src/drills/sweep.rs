//! `esper sweep`: many seeds of one scenario under generated fault schedules,
//! across cores.
//!
//! Each seed is independent — its own world, its own runtime, its own schedule
//! drawn from the seed — so seeds are spread over `jobs` worker threads that take
//! the next seed as they finish one. Results come back to the calling thread,
//! which reports progress and writes a failure file per failing seed; the summary
//! is sorted by seed, so it reads the same whatever order the workers finished in.
//! With `twice`, every seed runs a second time and the two trace hashes must
//! match: the run-twice determinism check, over the whole sweep.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use esper_core::planted::Planted;
use esper_sim::{FaultSpace, Invariant, SimScenario, TraceMode, run_scenario_with};

use super::failure::{FailureFileError, FailureRecord};
use super::generate::draw;
use super::hang;
use crate::seeds::SeedRange;
use crate::timeline::{self, TimelineError};

/// One machine's share of a sweep: `k/n` takes every seed whose offset in the
/// range is `k - 1` modulo `n`, so `n` machines together cover the range once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u64,
    pub count: u64,
}

/// A shard that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard {0:?} is not k/n with 1 <= k <= n (e.g. 2/8)")]
pub struct ShardError(String);

impl Shard {
    /// Whether the seed at `offset` from the start of the range is this shard's.
    pub fn owns(self, offset: u64) -> bool {
        offset % self.count == self.index - 1
    }
}

/// The most worker threads a sweep runs: four per core. More only add memory
/// (every worker holds a whole simulated world) and contention.
pub fn max_jobs(cores: usize) -> usize {
    cores.max(1).saturating_mul(4)
}

/// One shard's seeds, lowest first, handed to the workers one at a time: a sweep
/// over all 2^64 seeds holds one cursor, never a list of them.
#[derive(Debug)]
struct SeedCursor {
    next: Mutex<Option<u64>>,
    last: u64,
    step: u64,
}

impl SeedCursor {
    fn new(seeds: &SeedRange, shard: Shard) -> Self {
        let (first, last) = (*seeds.seeds().start(), *seeds.seeds().end());
        let next = first.checked_add(shard.index - 1).filter(|seed| *seed <= last);
        Self { next: Mutex::new(next), last, step: shard.count }
    }

    /// Seeds this cursor will still hand out.
    fn remaining(&self) -> u128 {
        let next = *self.next.lock().unwrap_or_else(PoisonError::into_inner);
        next.map_or(0, |next| u128::from(self.last - next) / u128::from(self.step) + 1)
    }

    fn take(&self) -> Option<u64> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let seed = (*next)?;
        *next = seed.checked_add(self.step).filter(|following| *following <= self.last);
        Some(seed)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ShardError(text.to_owned());
        let (index, count) = text.split_once('/').ok_or_else(error)?;
        let (index, count) =
            (index.trim().parse::<u64>().map_err(|_| error())?, count.trim().parse::<u64>().map_err(|_| error())?);
        if index == 0 || index > count {
            return Err(error());
        }
        Ok(Self { index, count })
    }
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub seeds: SeedRange,
    pub jobs: usize,
    pub shard: Option<Shard>,
    pub swarm: bool,
    /// Run every seed twice and compare trace hashes.
    pub twice: bool,
    /// Where failure files go.
    pub failures_dir: PathBuf,
    /// Stop taking new seeds once this many have failed (seeds already running
    /// finish); `None` sweeps every seed.
    pub max_failures: Option<usize>,
    /// The planted bug every run arms (`--plant`, test builds only).
    pub planted: Planted,
    /// Wall time after which a running seed is hung (see [`super::hang`]):
    /// [`super::hang::HANG_AFTER`] unless a test needs it sooner.
    pub hang_after: Duration,
}

/// A sweep that could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(
        "scenario {0} has no fault space to draw drills from; sweepable scenarios: {list}",
        list = sweepable().join(", ")
    )]
    NotSweepable(String),
    #[error("shard {index}/{count} of seeds {seeds} holds no seed")]
    EmptyShard { index: u64, count: u64, seeds: String },
    #[error(transparent)]
    File(#[from] FailureFileError),
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

/// The registered scenarios that have a fault space.
pub fn sweepable() -> Vec<&'static str> {
    crate::registry::all()
        .into_iter()
        .filter(|scenario| scenario.fault_space().is_some())
        .map(|scenario| scenario.name())
        .collect()
}

/// One seed's result.
#[derive(Debug, Clone)]
pub struct SeedResult {
    pub seed: u64,
    pub hash: String,
    pub sim_time: Duration,
    pub faults: usize,
    /// The failure file written for it, and what broke.
    pub failure: Option<(PathBuf, Invariant)>,
    /// The second run's hash, when it differed from the first.
    pub divergent_hash: Option<String>,
    /// What the run's hosts counted (e.g. alerts fired per rule).
    pub tally: BTreeMap<String, u64>,
}

/// Progress as the sweep goes.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u128,
    pub failures: usize,
}

/// The whole sweep's results, by seed.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    pub scenario: String,
    /// Seeds in this shard of the range (more than ran if the sweep stopped early).
    pub planned: u128,
    pub results: Vec<SeedResult>,
}

impl SweepSummary {
    /// Seeds that failed an invariant.
    pub fn failures(&self) -> impl Iterator<Item = &SeedResult> {
        self.results.iter().filter(|result| result.failure.is_some())
    }

    /// Seeds whose two runs hashed differently.
    pub fn divergent(&self) -> impl Iterator<Item = &SeedResult> {
        self.results.iter().filter(|result| result.divergent_hash.is_some())
    }

    /// Sim time over every seed (each counted once, even with `twice`).
    pub fn sim_time(&self) -> Duration {
        self.results.iter().map(|result| result.sim_time).sum()
    }

    /// Every seed's tally added up, by name.
    pub fn tally(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for (name, count) in self.results.iter().flat_map(|result| &result.tally) {
            *total.entry(name.clone()).or_default() += count;
        }
        total
    }

    /// Whether every seed passed (and, if checked, was deterministic).
    pub fn clean(&self) -> bool {
        self.failures().next().is_none() && self.divergent().next().is_none()
    }
}

/// The failure file for `seed` under `dir`.
pub fn failure_path(dir: &Path, seed: u64) -> PathBuf {
    dir.join(format!("{seed}.json"))
}

/// The timeline written next to a failure file: `failures/17.json` → `failures/17.html`.
pub fn timeline_path(failure: &Path) -> PathBuf {
    failure.with_extension("html")
}

/// Runs the sweep; `progress` is called on the calling thread after every seed.
pub fn sweep(
    scenario: &'static dyn SimScenario,
    config: &SweepConfig,
    mut progress: impl FnMut(Progress),
) -> Result<SweepSummary, SweepError> {
    let space = scenario.fault_space().ok_or_else(|| SweepError::NotSweepable(scenario.name().to_owned()))?;
    let shard = config.shard.unwrap_or(Shard { index: 1, count: 1 });
    let cursor = SeedCursor::new(&config.seeds, shard);
    let planned = cursor.remaining();
    if planned == 0 {
        let seeds = config.seeds.to_string();
        return Err(SweepError::EmptyShard { index: shard.index, count: shard.count, seeds });
    }
    let stop = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel();
    let mut results = Vec::new();
    let workers = usize::try_from(planned).unwrap_or(usize::MAX).min(config.jobs).max(1);
    std::thread::scope(|scope| -> Result<(), SweepError> {
        for _ in 0..workers {
            let (sender, cursor, stop, space) = (sender.clone(), &cursor, &stop, &space);
            scope.spawn(move || {
                while let Some(seed) = cursor.take().filter(|_| !stop.load(Ordering::Relaxed)) {
                    if sender.send(run_seed(scenario, space, seed, config)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut failures = 0;
        for (run, failure) in receiver {
            let mut result = run;
            if let Some((record, page)) = failure {
                let path = failure_path(&config.failures_dir, record.seed);
                record.write(&path)?;
                timeline::write_page(&timeline_path(&path), &page?)?;
                result.failure = Some((path, record.invariant()));
                failures += 1;
                if config.max_failures.is_some_and(|max| failures >= max) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            results.push(result);
            progress(Progress { done: results.len() as u64, total: planned, failures });
        }
        Ok(())
    })?;
    results.sort_by_key(|result| result.seed);
    Ok(SweepSummary { scenario: scenario.name().to_owned(), planned, results })
}

/// A failing seed's record and its timeline page.
type Failure = (FailureRecord, Result<String, TimelineError>);

fn run_seed(
    scenario: &dyn SimScenario,
    space: &FaultSpace,
    seed: u64,
    config: &SweepConfig,
) -> (SeedResult, Option<Failure>) {
    let what = format!("sweep: {} seed {seed}", scenario.name());
    let _watch =
        hang::watch(config.hang_after, what, hang::sweep_rerun(scenario.name(), seed, config.swarm, config.planted));
    let drill = draw(space, seed, config.swarm);
    let faults = drill.schedule.faults().len();
    let run = |mode| run_scenario_with(scenario, seed, drill.schedule.clone(), config.planted, mode);
    let report = run(TraceMode::Hash);
    let divergent_hash = config.twice.then(|| run(TraceMode::Hash).hash).filter(|again| *again != report.hash);
    // The sweep keeps only hashes; a failure's timeline needs every line, so the
    // seed runs once more in full (the same run: same seed, schedule and commit).
    let failure = FailureRecord::from_report(&report, config.swarm, drill.kinds).map(|record| {
        let replay = record.replay_command(&failure_path(&config.failures_dir, seed));
        (record, timeline::render(&run(TraceMode::Full), replay))
    });
    let result = SeedResult {
        seed,
        hash: report.hash,
        sim_time: report.sim_elapsed,
        faults,
        failure: None,
        divergent_hash,
        tally: report.tally,
    };
    (result, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_cover_the_range_once() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["0/4", "5/4", "x/4", "3", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        for count in 1..=16 {
            for offset in 0..40 {
                let owners = (1..=count).filter(|index| Shard { index: *index, count }.owns(offset)).count();
                assert_eq!(owners, 1, "offset {offset} of {count} shards");
            }
        }
    }

    #[test]
    fn a_cursor_hands_out_its_shard_in_order_and_counts_without_listing() {
        let seeds: SeedRange = "10..=20".parse().expect("seeds");
        let cursor = SeedCursor::new(&seeds, Shard { index: 2, count: 4 });
        assert_eq!(cursor.remaining(), 3);
        let taken: Vec<u64> = std::iter::from_fn(|| cursor.take()).collect();
        assert_eq!(taken, [11, 15, 19]);
        assert_eq!(cursor.remaining(), 0);
        let everything: SeedRange = format!("0..={}", u64::MAX).parse().expect("seeds");
        let last_shard = SeedCursor::new(&everything, Shard { index: 3, count: 3 });
        assert_eq!(last_shard.remaining(), (1 << 64) / 3, "counted, never listed");
        let top = SeedCursor::new(
            &format!("{}..={}", u64::MAX - 1, u64::MAX).parse().expect("seeds"),
            Shard { index: 1, count: 1 },
        );
        assert_eq!(
            std::iter::from_fn(|| top.take()).collect::<Vec<_>>(),
            [u64::MAX - 1, u64::MAX],
            "no overflow at the top"
        );
        assert_eq!(max_jobs(2), 8);
    }
}
