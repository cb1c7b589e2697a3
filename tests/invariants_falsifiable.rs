//! Every drill invariant can fail: for each planted bug (`esper_core::planted`),
//! a sweep with it armed finds it within a stated number of seeds, the failure
//! names exactly that bug's invariant (the typed value), the shrinker shrinks
//! it without drifting to another invariant, and `esper replay` on the shrunk
//! file reproduces the failure and its trace hash. With no bug armed the same
//! seeds pass, so each finding is the bug's and not noise.
//!
//! Built only with the test-only feature: `ci/test` runs
//! `cargo nextest run --features planted-bugs --test invariants_falsifiable`.
#![cfg(feature = "planted-bugs")]

mod support;

use std::path::Path;
use std::process::Command;

use esper_core::planted::{Planted, PlantedBug};
use esper_scenarios::drills::failure::FailureRecord;
use esper_scenarios::drills::hang::HANG_AFTER;
use esper_scenarios::drills::shrink::{episode_count, shrink_record};
use esper_scenarios::drills::sweep::{SweepConfig, SweepSummary, sweep};
use esper_scenarios::registry;
use esper_sim::{Invariant, TraceMode};

/// One planted bug and where a sweep finds it.
struct Case {
    bug: PlantedBug,
    /// The invariant it must break.
    invariant: Invariant,
    scenario: &'static str,
    /// The sweep finds the bug within these seeds (swarm mode), and without the
    /// bug every one of them passes.
    seeds: &'static str,
}

const CASES: [Case; 12] = [
    case(PlantedBug::WalAckBeforeSync, Invariant::WalAcknowledged, "control-loop", "0..10"),
    case(PlantedBug::RollbackSkipsTensor, Invariant::RollbackRestores, "control-loop", "0..5"),
    case(PlantedBug::AlertFiresLate, Invariant::AlertsMatch, "control-loop", "0..300"),
    case(PlantedBug::ConsumerLeavesPending, Invariant::OonaLedger, "oona-ledger", "0..5"),
    case(PlantedBug::OutboxForgetsCritical, Invariant::OonaLedger, "oona-ledger", "0..10"),
    case(PlantedBug::PanicOnRarePath, Invariant::NoPanic, "control-loop", "0..40"),
    case(PlantedBug::LivelockAfterRepair, Invariant::Liveness, "control-loop", "0..10"),
    case(PlantedBug::TelemetrySentRaw, Invariant::TelemetryBudget, "control-loop", "0..5"),
    case(PlantedBug::SplitLosesMetric, Invariant::TelemetryComplete, "control-loop", "0..15"),
    case(PlantedBug::SnapshotLosesIncrement, Invariant::TelemetryComplete, "oona-ledger", "0..5"),
    case(PlantedBug::BlendLeaksIntoHost, Invariant::GradientIsolation, "morphogenesis", "0..5"),
    case(PlantedBug::ActiveSkipsFossilized, Invariant::SeedLifecycle, "morphogenesis", "0..5"),
];

const fn case(bug: PlantedBug, invariant: Invariant, scenario: &'static str, seeds: &'static str) -> Case {
    Case { bug, invariant, scenario, seeds }
}

/// Shrinker runs allowed per case.
const SHRINK_RUNS: u32 = 60;

/// Planted bugs shown by a targeted drill rather than a scenario sweep: no drill
/// scenario fails an fsync under Tamiyo's field-report log and then keeps
/// reporting, so the poisoned-log drill runs directly (its own test below).
const DRILLED: [PlantedBug; 1] = [PlantedBug::PoisonedLogNeverReopens];

fn case_of(bug: PlantedBug) -> &'static Case {
    CASES.iter().find(|case| case.bug == bug).expect("every planted bug has a case")
}

fn sweep_with(case: &Case, planted: Planted, dir: &Path, max_failures: Option<usize>) -> SweepSummary {
    let scenario = registry::find(case.scenario).expect("registered");
    let config = SweepConfig {
        seeds: case.seeds.parse().expect("seed range"),
        jobs: 1,
        shard: None,
        swarm: true,
        twice: false,
        failures_dir: dir.to_path_buf(),
        max_failures,
        planted,
        hang_after: HANG_AFTER,
    };
    sweep(scenario, &config, |_| {}).expect("sweepable")
}

/// Sweep with `bug` armed → failure file → shrink → `esper replay` of the shrunk file.
fn falsify(bug: PlantedBug) {
    let case = case_of(bug);
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = sweep_with(case, Planted::bug(Some(bug)), dir.path(), Some(1));
    let found = summary
        .failures()
        .next()
        .unwrap_or_else(|| panic!("{bug} not found within seeds {} of {}", case.seeds, case.scenario));
    let (path, invariant) = found.failure.clone().expect("a failure file");
    let record = FailureRecord::read(&path).expect("the failure file reads back");
    assert_eq!(invariant, case.invariant, "{bug} broke the wrong invariant: {}", record.violation);
    assert_eq!(record.planted, Some(bug), "the failure file records the armed bug");
    println!("{bug}: found at seed {} ({} seeds run): {}", found.seed, summary.results.len(), record.violation);

    let first = record.replay(TraceMode::Hash).expect("registered");
    let (shrunk, minimal) = shrink_record(&record, first, SHRINK_RUNS, |_| {}).expect("the failure shrinks");
    assert_eq!(minimal.invariant(), case.invariant, "the shrinker kept {bug}'s invariant");
    let (before, after) = (episode_count(&record.schedule), episode_count(&minimal.schedule));
    assert!(after <= before, "shrunk from {before} to {after} faults: {}", shrunk.schedule);
    println!("{bug}: shrunk from {before} to {after} fault(s) in {} runs: {}", shrunk.runs, minimal.schedule);

    let shrunk_path = dir.path().join("shrunk.json");
    minimal.write(&shrunk_path).expect("the shrunk record writes");
    let output =
        Command::new(env!("CARGO_BIN_EXE_esper")).arg("replay").arg(&shrunk_path).output().expect("esper runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let named = format!("FAILED: invariant {} (the recorded one", case.invariant);
    assert!(stdout.contains(&named), "{stdout}");
    assert!(stdout.contains("trace hash same as recorded"), "{stdout}");
    assert!(stdout.contains(&format!("planted bug armed: {bug}")), "{stdout}");
}

#[test]
fn a_wal_that_acks_before_syncing_breaks_wal_acknowledged() {
    falsify(PlantedBug::WalAckBeforeSync);
}

#[test]
fn a_rollback_that_skips_a_tensor_breaks_rollback_restores() {
    falsify(PlantedBug::RollbackSkipsTensor);
}

#[test]
fn an_alert_engine_one_evaluation_late_breaks_alerts_match() {
    falsify(PlantedBug::AlertFiresLate);
}

#[test]
fn a_consumer_that_leaves_entries_pending_breaks_oona_ledger() {
    falsify(PlantedBug::ConsumerLeavesPending);
}

#[test]
fn an_outbox_that_forgets_critical_messages_breaks_oona_ledger() {
    falsify(PlantedBug::OutboxForgetsCritical);
}

#[test]
fn a_panic_on_a_rare_path_breaks_no_panic() {
    falsify(PlantedBug::PanicOnRarePath);
}

#[test]
fn a_client_that_never_redials_breaks_liveness() {
    falsify(PlantedBug::LivelockAfterRepair);
}

#[test]
fn telemetry_sent_raw_breaks_telemetry_budget() {
    falsify(PlantedBug::TelemetrySentRaw);
}

#[test]
fn a_split_that_loses_a_metric_breaks_telemetry_complete() {
    falsify(PlantedBug::SplitLosesMetric);
}

#[test]
fn a_snapshot_that_loses_an_increment_breaks_telemetry_complete() {
    falsify(PlantedBug::SnapshotLosesIncrement);
}

#[test]
fn an_active_count_without_fossilized_seeds_breaks_seed_lifecycle() {
    falsify(PlantedBug::ActiveSkipsFossilized);
}

#[test]
fn a_blend_that_leaks_into_the_host_breaks_gradient_isolation() {
    falsify(PlantedBug::BlendLeaksIntoHost);
}

#[test]
fn every_planted_bug_has_a_case() {
    for bug in PlantedBug::ALL.into_iter().filter(|bug| !DRILLED.contains(bug)) {
        assert_eq!(case_of(bug).bug, bug);
    }
}

/// The poisoned-log drill passes as shipped and fails with its bug armed: the
/// store then refuses every report after the failed fsync.
#[test]
fn a_store_that_never_reopens_a_poisoned_log_fails_the_poisoned_log_drill() {
    let run = |planted| support::runtime::block_on(support::field_reports::poisoned_log_drill(planted));
    run(Planted::NONE).unwrap_or_else(|error| panic!("with no bug armed: {error}"));
    let failed = run(Planted::bug(Some(PlantedBug::PoisonedLogNeverReopens))).expect_err("the drill catches the bug");
    assert!(failed.contains("report 3") && failed.contains("Poisoned"), "{failed}");
}

#[test]
fn with_no_bug_armed_every_case_seed_passes() {
    for case in &CASES {
        let dir = tempfile::tempdir().expect("temp dir");
        let summary = sweep_with(case, Planted::NONE, dir.path(), None);
        let failed: Vec<u64> = summary.failures().map(|result| result.seed).collect();
        assert!(failed.is_empty(), "{} seeds {} fail with no bug armed: {failed:?}", case.scenario, case.seeds);
    }
}

/// The saved regression of the outbox bug fails again when the bug is re-armed.
#[test]
fn the_saved_outbox_regression_fails_with_its_bug_armed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/drills/regressions/oona-ledger-critical-lost-in-redis-crash.json");
    let record = FailureRecord::read(&path).expect("the regression file reads");
    let armed = FailureRecord { planted: Some(PlantedBug::OutboxForgetsCritical), ..record };
    let report = armed.replay(TraceMode::Hash).expect("registered");
    assert_eq!(report.outcome.invariant(), Some(Invariant::OonaLedger), "{report}");
}
