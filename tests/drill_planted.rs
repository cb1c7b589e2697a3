//! The drill pipeline finds a planted bug: sweep → failure file → shrink → replay.
//!
//! Built only with the test-only feature `planted-bug-outbox`, under which Oona
//! forgets a critical message as soon as XADD returns instead of holding it in
//! its outbox until Redis has surely persisted it. `ci/test` runs:
//! `cargo nextest run --features planted-bug-outbox --test drill_planted`.
#![cfg(feature = "planted-bug-outbox")]

use std::path::Path;
use std::process::Command;

use esper_scenarios::drills::failure::FailureRecord;
use esper_scenarios::drills::shrink::shrink_record;
use esper_scenarios::drills::sweep::{SweepConfig, sweep};
use esper_scenarios::registry;
use esper_sim::{Invariant, TraceMode};

#[test]
fn the_sweep_finds_the_planted_bug_and_shrinks_it_to_at_most_three_faults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = registry::find("oona-ledger").expect("registered");
    let config = SweepConfig {
        seeds: "0..1000".parse().expect("seed range"),
        jobs: 2,
        shard: None,
        swarm: true,
        twice: false,
        failures_dir: dir.path().to_path_buf(),
        max_failures: Some(1),
    };
    let summary = sweep(scenario, &config, |_| {}).expect("sweepable");
    let found = summary.failures().next().expect("the planted bug is found within 1,000 seeds");
    let (path, invariant) = found.failure.clone().expect("a failure file");
    assert_eq!(invariant, Invariant::OonaLedger, "{}", path.display());
    println!("found at seed {} after {} seeds: {}", found.seed, summary.results.len(), path.display());

    let record = FailureRecord::read(&path).expect("the failure file reads back");
    let first = record.replay(TraceMode::Hash).expect("registered");
    let (shrunk, minimal) = shrink_record(&record, first, 300, |_| {}).expect("the recorded failure shrinks");
    assert_eq!(minimal.invariant, Invariant::OonaLedger);
    assert_eq!(minimal.schedule, shrunk.schedule);
    assert!(
        shrunk.schedule.faults().len() <= 3,
        "from {} to {} faults: {}",
        record.schedule.faults().len(),
        shrunk.schedule.faults().len(),
        shrunk.schedule
    );
    println!(
        "shrunk from {} to {} faults: {}",
        record.schedule.faults().len(),
        shrunk.schedule.faults().len(),
        shrunk.schedule
    );

    // The printed replay command reproduces it: same invariant, same trace hash.
    let output = Command::new(env!("CARGO_BIN_EXE_esper")).arg("replay").arg(&path).output().expect("esper runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED: invariant oona-ledger (the recorded one"), "{stdout}");
    assert!(stdout.contains("trace hash same as recorded"), "{stdout}");
}

#[test]
fn the_saved_regression_fails_on_the_planted_bug() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/drills/regressions/oona-ledger-critical-lost-in-redis-crash.json");
    let record = FailureRecord::read(&path).expect("the regression file reads");
    let report = record.replay(TraceMode::Hash).expect("registered");
    assert_eq!(Invariant::of(&report.outcome), Some(Invariant::OonaLedger), "{report}");
}
