//! The WAL soak and `tamiyo-wal` as an operator runs them: the `esper` binary on real
//! files, and the `wal-soak` sim scenario.

use std::path::Path;
use std::process::{Command, Output};

use esper_scenarios::registry;
use esper_sim::{RngTree, TraceMode, run_scenario};

fn esper(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esper")).args(arguments).output().expect("esper binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn field(output: &Output, name: &str) -> String {
    let all = text(output);
    let prefix = format!("{name}=");
    all.split_whitespace().find_map(|word| word.strip_prefix(&prefix)).map(str::to_owned).unwrap_or_default()
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 temp path")
}

#[test]
fn non_strict_soak_passes_and_reports_every_injection() {
    let workdir = tempfile::tempdir().expect("tempdir");
    let output =
        esper(&["wal-soak", "--iterations", "50", "--truncate-every", "10", "--workdir", path(workdir.path())]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(field(&output, "injections"), "5");
    assert_eq!(field(&output, "recovered"), "50");
    assert_eq!(field(&output, "truncated_bytes"), "20", "five 4-byte torn records cut away");
    assert_eq!(field(&output, "tamiyo.field_reports.retry_backlog_total"), "16", "every third report unpublished");
}

#[test]
fn strict_soak_fails_with_the_typed_error_at_the_first_injection() {
    let workdir = tempfile::tempdir().expect("tempdir");
    let output = esper(&[
        "wal-soak",
        "--iterations",
        "50",
        "--truncate-every",
        "10",
        "--strict",
        "--workdir",
        path(workdir.path()),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("iteration 10"), "{message}");
    assert!(message.contains("field_reports.log: log truncated at offset"), "{message}");
}

#[test]
fn soak_refuses_a_workdir_that_already_holds_a_store() {
    let workdir = tempfile::tempdir().expect("tempdir");
    let arguments = ["wal-soak", "--iterations", "3", "--truncate-every", "2", "--workdir", path(workdir.path())];
    assert!(esper(&arguments).status.success());
    let again = esper(&arguments);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already holds a field-report log"), "{}", text(&again));
}

#[test]
fn tamiyo_wal_backup_then_restore_brings_the_store_back() {
    let workdir = tempfile::tempdir().expect("tempdir");
    let soak = esper(&["wal-soak", "--iterations", "12", "--truncate-every", "5", "--workdir", path(workdir.path())]);
    assert!(soak.status.success(), "{}", text(&soak));
    let store = workdir.path().join("var/tamiyo");
    let backup = workdir.path().join("backup");
    let saved = esper(&["tamiyo-wal", "backup", "--dest", path(&backup), "--dir", path(&store)]);
    assert!(saved.status.success(), "{}", text(&saved));
    assert!(text(&saved).contains("12 records"), "{}", text(&saved));
    let original = std::fs::read(store.join("field_reports.log")).expect("log");
    std::fs::write(store.join("field_reports.log"), b"garbage").expect("wreck the log");
    let restored = esper(&["tamiyo-wal", "restore", "--from", path(&backup), "--dir", path(&store)]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert_eq!(std::fs::read(store.join("field_reports.log")).expect("log"), original);
    let missing =
        esper(&["tamiyo-wal", "restore", "--from", path(&workdir.path().join("nope")), "--dir", path(&store)]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("no field_reports.log to restore"), "{}", text(&missing));
}

/// Over 100 seeds the sim drill passes, really crashes the host mid-drill, and
/// sometimes fails an fsync; the same seed gives the same hash.
#[test]
fn sim_wal_soak_passes_under_crashes_and_fsync_errors() {
    let scenario = registry::find("wal-soak").expect("registered");
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..100 {
        let report = run_scenario(scenario, seed, TraceMode::Hash);
        assert!(report.passed(), "{report}");
        kinds.extend(report.schedule.faults().iter().map(|scheduled| scheduled.fault.kind()));
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["crash", "disk_error", "restart"]);
    let schedule = scenario.schedule(&RngTree::new(5).child("faults"));
    assert!(!schedule.is_empty());
    assert_eq!(run_scenario(scenario, 5, TraceMode::Hash).hash, run_scenario(scenario, 5, TraceMode::Hash).hash);
}
