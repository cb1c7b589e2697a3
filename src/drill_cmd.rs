//! `esper sweep`, `esper replay` and `esper shrink`: printing around `esper_scenarios::drills`.

#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the progress bar and the speed line report wall time; nothing here feeds a simulation"
)]

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use esper_scenarios::drills::failure::{FailureRecord, cargo_run_for};
use esper_scenarios::drills::shrink::{episode_count, fails_the_same, shrink_record};
use esper_scenarios::drills::sweep::{Progress, SweepConfig, sweep, timeline_path};
use esper_sim::{Outcome, RunReport, SimScenario, TraceMode};

use crate::exit::{CommandResult, Tag as _};
use crate::sweep_summary;

/// Runs a sweep with a progress bar on stderr, and writes its markdown summary to
/// `summary_md` if given; true when every seed passed.
pub fn sweep_command(
    scenario: &'static dyn SimScenario,
    config: &SweepConfig,
    summary_md: Option<&Path>,
) -> CommandResult {
    let started = Instant::now();
    let mut bar = ProgressBar::new(started);
    let summary = sweep(scenario, config, |progress| bar.show(progress))?;
    bar.finish();
    let wall = started.elapsed();
    let seeds = summary.results.len();
    let failures: Vec<_> = summary.failures().collect();
    let mode = if config.swarm { "swarm" } else { "all fault kinds" };
    let mode = match config.planted.asked() {
        Some(bug) => format!("{mode}, planted bug {bug}"),
        None => mode.to_owned(),
    };
    let shard = config.shard.map(|shard| format!(" shard {}/{}", shard.index, shard.count)).unwrap_or_default();
    let stopped =
        if (summary.results.len() as u128) < summary.planned { " (stopped early at --max-failures)" } else { "" };
    println!(
        "sweep: scenario={} seeds={}{shard} ({mode}) jobs={}: {} passed, {} failed{stopped}",
        summary.scenario,
        config.seeds,
        config.jobs,
        seeds - failures.len(),
        failures.len()
    );
    let faults: usize = summary.results.iter().map(|result| result.faults).sum();
    let sim = summary.sim_time();
    let runs = if config.twice { 2 } else { 1 };
    let per_core = sim.as_secs_f64() * f64::from(runs) / (wall.as_secs_f64() * config.jobs as f64).max(1e-9);
    println!(
        "  {faults} faults injected; {:.1} s of sim time in {:.1} s wall ({runs} run(s) per seed): {per_core:.0} sim s per wall s per core, {:.1} seeds/s",
        sim.as_secs_f64(),
        wall.as_secs_f64(),
        seeds as f64 / wall.as_secs_f64().max(1e-9),
    );
    if config.twice {
        let divergent: Vec<u64> = summary.divergent().map(|result| result.seed).collect();
        match divergent.as_slice() {
            [] => println!("  deterministic: every seed ran twice with identical trace hashes"),
            seeds => println!("  NOT deterministic: seeds {seeds:?} hashed differently on their second run"),
        }
    }
    print_tally(&summary.tally(), "all seeds");
    let cargo_run = cargo_run_for(scenario.name(), config.planted);
    for result in &failures {
        if let Some((path, invariant)) = &result.failure {
            println!("  seed={} invariant={invariant} file={}", result.seed, path.display());
            println!("    replay: {cargo_run} replay {}", path.display());
            println!("    shrink: {cargo_run} shrink {}", path.display());
            println!("    timeline: {}", timeline_path(path).display());
        }
    }
    if let Some(path) = summary_md {
        sweep_summary::write(path, config, &summary)
            .with_context(|| format!("writing the sweep summary to {}", path.display()))
            .runtime()?;
    }
    Ok(summary.clean())
}

/// A tally (a sweep's, or one run's), one line per group, `over` saying whose:
/// `alerts_fired.training_latency_high` and its siblings print as
/// `alerts_fired (all seeds): training_latency_high=N …`.
pub(crate) fn print_tally(tally: &BTreeMap<String, u64>, over: &str) {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, count) in tally {
        let (group, item) = name.split_once('.').unwrap_or(("tally", name));
        groups.entry(group).or_default().push(format!("{item}={count}"));
    }
    for (group, items) in groups {
        println!("  {group} ({over}): {}", items.join(" "));
    }
}

/// Reruns a failure file, writing its timeline if asked; true when the run passes
/// (the invariant holds now).
pub fn replay_command(path: &Path, timeline: Option<&Path>) -> CommandResult {
    let record = FailureRecord::read(path)?;
    let report = record.replay(if timeline.is_some() { TraceMode::Full } else { TraceMode::Hash })?;
    print_replay(&record, &report, path);
    if let Some(page) = timeline {
        esper_scenarios::timeline::write(page, &report, record.replay_command(path))?;
        println!("timeline: {}", page.display());
    }
    Ok(report.passed())
}

fn print_replay(record: &FailureRecord, report: &RunReport, path: &Path) {
    println!(
        "seed={} scenario={} hash={} events={} faults: {}",
        report.seed, report.scenario, report.hash, report.events, record.schedule
    );
    if let Some(bug) = record.planted {
        println!("planted bug armed: {bug}");
    }
    match &report.outcome {
        Outcome::Failed { violation } => {
            let same = if fails_the_same(record, report) { "the recorded one" } else { "NOT the recorded one" };
            println!("FAILED: invariant {} ({same}, {})", violation.invariant, record.invariant());
            println!("  detail: {}", violation.detail);
            let hash = if report.hash == record.hash { "same as recorded" } else { "differs from the recorded run" };
            println!("  trace hash {hash}");
            println!("  last {} trace events:", report.tail.len());
            for line in &report.tail {
                println!("    {line}");
            }
            println!("  replay: {}", record.replay_command(path));
        }
        Outcome::Passed => println!("passed: the {} invariant holds under this schedule now", record.invariant()),
    }
}

/// Minimises a failure file's schedule and writes the result; true when it shrank
/// a failing schedule (false when the file does not fail to begin with).
pub fn shrink_command(path: &Path, output: Option<PathBuf>, max_runs: u32) -> CommandResult {
    let record = FailureRecord::read(path)?;
    let first = record.replay(TraceMode::Hash)?;
    if !fails_the_same(&record, &first) {
        println!(
            "{} does not fail its invariant {} on this commit; nothing to shrink",
            path.display(),
            record.invariant()
        );
        print_replay(&record, &first, path);
        return Ok(false);
    }
    let (shrunk, minimal) = shrink_record(&record, first, max_runs, |runs| {
        if runs % 25 == 0 {
            eprintln!("shrink: {runs} runs");
        }
    })?;
    let output = output.unwrap_or_else(|| minimised_path(path));
    minimal.write(&output)?;
    println!(
        "shrunk {} from {} to {} fault(s) ({} runs, {} steps): {}",
        path.display(),
        episode_count(&record.schedule),
        episode_count(&minimal.schedule),
        shrunk.runs,
        shrunk.steps,
        minimal.schedule
    );
    println!("  {}", minimal.violation);
    println!("  wrote {}", output.display());
    println!("  replay: {}", minimal.replay_command(&output));
    Ok(true)
}

/// `failures/17.json` → `failures/17.min.json`.
fn minimised_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}.min.json"))
}

/// A one-line progress bar on a terminal; a line per tenth of the work otherwise
/// (CI logs).
struct ProgressBar {
    started: Instant,
    last_drawn: Option<Instant>,
    terminal: bool,
    drawn_tenths: u128,
}

impl ProgressBar {
    fn new(started: Instant) -> Self {
        Self { started, last_drawn: None, terminal: std::io::stderr().is_terminal(), drawn_tenths: 0 }
    }

    fn show(&mut self, progress: Progress) {
        let rate = progress.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        if self.terminal {
            let due = self.last_drawn.is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
            if due || u128::from(progress.done) == progress.total {
                let filled = usize::try_from(u128::from(progress.done) * 30 / progress.total.max(1)).unwrap_or(30);
                let bar = format!("{}{}", "#".repeat(filled), ".".repeat(30 - filled));
                eprint!(
                    "\r[{bar}] {}/{} seeds · {} failed · {rate:.1} seeds/s ",
                    progress.done, progress.total, progress.failures
                );
                let _ = std::io::stderr().flush();
                self.last_drawn = Some(Instant::now());
            }
        } else {
            let tenths = u128::from(progress.done) * 10 / progress.total.max(1);
            if tenths > self.drawn_tenths {
                self.drawn_tenths = tenths;
                eprintln!(
                    "sweep: {}/{} seeds, {} failed, {rate:.1} seeds/s",
                    progress.done, progress.total, progress.failures
                );
            }
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
