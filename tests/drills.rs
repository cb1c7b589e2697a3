//! Drills: a bounded number of generated seeds per drill family, proptest over
//! the schedule space, the saved regressions, and the CLI around them.
//!
//! Long sweeps live in `ci/sweep`; these run on every `cargo nextest run`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use esper_core::nissa::alerts::ALERT_NAMES;
use esper_core::planted::Planted;
use esper_scenarios::drills::failure::FailureRecord;
use esper_scenarios::drills::generate::{FaultKind, schedule_strategy};
use esper_scenarios::drills::hang::HANG_AFTER;
use esper_scenarios::drills::sweep::{SweepConfig, SweepSummary, sweep};
use esper_scenarios::registry;
use esper_sim::{Fault, FaultSchedule, ScheduledFault, TraceMode, run_scenario_with};
use proptest::prelude::*;

mod support;

use support::seeds::dst_seeds;

fn drill(name: &str, seeds: &str, failures_dir: &Path) -> SweepSummary {
    let scenario = registry::find(name).expect("registered");
    let config = SweepConfig {
        seeds: seeds.parse().expect("seed range"),
        jobs: 2,
        shard: None,
        swarm: true,
        twice: true,
        failures_dir: failures_dir.to_path_buf(),
        max_failures: None,
        planted: Planted::NONE,
        hang_after: HANG_AFTER,
    };
    sweep(scenario, &config, |_| {}).expect("sweepable")
}

fn assert_clean(summary: &SweepSummary) {
    if let Some(result) = summary.failures().next() {
        let (path, invariant) = result.failure.as_ref().expect("a failure");
        let record = std::fs::read_to_string(path).unwrap_or_default();
        panic!(
            "seed {} broke {invariant}; replay: cargo run --release -- replay {}\n{record}",
            result.seed,
            path.display()
        );
    }
    let divergent: Vec<u64> = summary.divergent().map(|result| result.seed).collect();
    assert!(divergent.is_empty(), "seeds {divergent:?} hashed differently on a second run");
}

#[test]
fn control_loop_swarm_drills_keep_every_invariant_and_replay_identically() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 64 seeds, or fewer under ESPER_DST_SEEDS (support::seeds).
    let seeds = dst_seeds(64);
    let summary = drill("control-loop", &format!("0..{seeds}"), dir.path());
    assert_eq!(summary.results.len() as u64, seeds);
    assert_clean(&summary);
    let faults: usize = summary.results.iter().map(|result| result.faults).sum();
    assert!(faults as u64 > seeds, "the drills should inject faults: {faults}");
    let tally = summary.tally();
    for alert in ALERT_NAMES {
        assert!(tally.contains_key(&format!("alerts_fired.{alert}")), "{alert} is counted: {tally:?}");
    }
    // The rules a control loop can feed are fed, from what reached Redis: epoch
    // latency every epoch, restore latency every rolled-back epoch.
    for alert in ["training_latency_high", "tolaria_rollback_restore_slow"] {
        let samples = tally[&format!("alert_samples.{alert}")];
        assert!(samples > 0, "the drills never fed {alert}: {tally:?}");
    }
    // Drills that never fire anything prove nothing. Since Tolaria's telemetry is
    // split into parts and Kasmina's and Oona's snapshots ride the bus every epoch
    // (more XADDs per epoch, so fewer epochs fit a throttle window), no seed of
    // 0..64 holds the latency high for three epochs; seed 77's swarm schedule does
    // (found by `esper sweep --scenario control-loop --swarm` over 0..80; 284, the
    // seed before the snapshots, no longer does), and alerts-match must hold there too.
    let throttled = drill("control-loop", "70..80", dir.path());
    assert_clean(&throttled);
    let fired = throttled.tally()["alerts_fired.training_latency_high"];
    assert!(fired >= 1, "no control-loop drill fired training_latency_high: {:?}", throttled.tally());
}

/// Two windows of a device at 500 % (epochs of ~400 ms, over the 350 ms warning)
/// with a healthy stretch between: `training_latency_high` fires in each and so
/// must have cleared in between, in the evaluations the oracle expects (the run
/// fails `alerts-match` otherwise).
#[test]
fn a_throttled_device_fires_training_latency_high_and_clears_after_the_heal() {
    let (slow, heal) = (
        |at_ms| ScheduledFault { at_ms, fault: Fault::DeviceSlow { host: "tolaria".into(), factor_percent: 500 } },
        |at_ms| ScheduledFault { at_ms, fault: Fault::DeviceHeal { host: "tolaria".into() } },
    );
    let schedule = FaultSchedule::new(vec![slow(1_000), heal(3_000), slow(5_000), heal(7_000)]);
    let scenario = registry::find("control-loop").expect("registered");
    let report = run_scenario_with(scenario, 3, schedule, Planted::NONE, TraceMode::Hash);
    assert!(report.passed(), "{report}");
    assert_eq!(report.tally.get("alerts_fired.training_latency_high"), Some(&2), "{:?}", report.tally);
}

#[test]
fn oona_ledger_swarm_drills_balance_the_ledger() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = drill("oona-ledger", &format!("0..{}", dst_seeds(16)), dir.path());
    assert_clean(&summary);
}

/// Every schedule saved under tests/drills/regressions/ once failed; each must
/// pass now, on every commit, forever.
#[test]
fn every_saved_regression_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drills/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/drills/regressions exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "regressions: {files:?}");
    for file in files {
        let record = FailureRecord::read(&file).unwrap_or_else(|error| panic!("{error}"));
        let report = record.replay(TraceMode::Hash).expect("the scenario is registered");
        assert!(
            report.passed(),
            "{} fails again:\n{report}\nreplay: cargo run --release -- replay {}",
            file.display(),
            file.display()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// proptest draws control-loop schedules over every fault kind; on a failure
    /// it shrinks them (removing episodes, moving them later, shortening them)
    /// and reports the smallest schedule with its seed.
    #[test]
    fn control_loop_survives_any_schedule_from_its_fault_space(
        episodes in {
            let space = registry::find("control-loop").expect("registered").fault_space().expect("drillable");
            schedule_strategy(&space, &FaultKind::available(&space))
        },
        seed in 0_u64..1_000,
    ) {
        let schedule = esper_scenarios::drills::generate::lower(&episodes);
        let scenario = registry::find("control-loop").expect("registered");
        let report = run_scenario_with(scenario, seed, schedule.clone(), Planted::NONE, TraceMode::Hash);
        prop_assert!(report.passed(), "seed {seed}, schedule {schedule}:\n{report}");
    }
}

fn esper(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esper")).args(arguments).output().expect("esper binary runs")
}

#[test]
fn sweep_replay_and_shrink_refuse_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbled = dir.path().join("garbled.json");
    std::fs::write(&garbled, "{ not json").expect("write");
    let cases: [(&[&str], &str); 5] = [
        (&["sweep", "--scenario", "heartbeat", "--seeds", "0..2"], "no fault space"),
        (&["sweep", "--scenario", "control-loop", "--shard", "5/4"], "is not k/n"),
        (&["replay", "/nonexistent/failure.json"], "cannot read failure file"),
        (&["replay", garbled.to_str().expect("utf-8")], "is not a drill failure file"),
        (&["shrink", garbled.to_str().expect("utf-8")], "is not a drill failure file"),
    ];
    for (arguments, message) in cases {
        let output = esper(arguments);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains(message), "{arguments:?}: {stderr}");
    }
}

#[test]
fn a_sweep_on_the_cli_reports_its_seeds_and_a_shard_covers_its_share() {
    let dir = tempfile::tempdir().expect("temp dir");
    let failures = dir.path().join("failures");
    let output = esper(&[
        "sweep",
        "--scenario",
        "control-loop",
        "--seeds",
        "0..8",
        "--shard",
        "2/4",
        "--swarm",
        "--twice",
        "--failures-dir",
        failures.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("seeds=0..=7 shard 2/4 (swarm) jobs="), "{stdout}");
    assert!(stdout.contains(": 2 passed, 0 failed"), "seeds 1 and 5: {stdout}");
    assert!(stdout.contains("deterministic: every seed ran twice"), "{stdout}");
    assert!(stdout.contains("alerts_fired (all seeds): kasmina_isolation_violation="), "{stdout}");
    assert!(stdout.contains("alert_samples (all seeds): "), "{stdout}");
    assert!(!failures.exists(), "no failure, no file");
}
