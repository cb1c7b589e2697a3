//! The `esper` binary as a user meets it: hashes, exit codes, messages.

use std::process::{Command, Output};

fn esper(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esper")).args(arguments).output().expect("esper binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn hash_of(output: &Output) -> String {
    let text = stdout(output);
    text.split_whitespace()
        .find_map(|word| word.strip_prefix("hash="))
        .unwrap_or_else(|| panic!("no hash in {text:?}"))
        .to_owned()
}

#[test]
fn run_prints_the_same_hash_twice_and_another_for_another_seed() {
    let first = esper(&["run", "--scenario", "heartbeat", "--seed", "7"]);
    let second = esper(&["run", "--scenario", "heartbeat", "--seed", "7"]);
    let other = esper(&["run", "--scenario", "heartbeat", "--seed", "8"]);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(hash_of(&first), hash_of(&second));
    assert_ne!(hash_of(&first), hash_of(&other));
    assert!(stdout(&first).starts_with("seed=7 "), "the seed comes first: {}", stdout(&first));
}

#[test]
fn run_writes_the_trace_whose_hash_it_prints() {
    let directory = std::env::temp_dir().join(format!("esper-cli-trace-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let path = directory.join("trace.txt");
    let output = esper(&["run", "--scenario", "heartbeat", "--seed", "3", "--trace", path.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{output:?}");
    let trace = std::fs::read_to_string(&path).expect("trace written");
    let events = stdout(&output).split_whitespace().find_map(|word| word.strip_prefix("events=")).map(str::to_owned);
    assert_eq!(events, Some(trace.lines().count().to_string()));
    std::fs::remove_dir_all(&directory).ok();
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let cases: [(&[&str], &str); 5] = [
        (&["run", "--scenario", "nope", "--seed", "1"], "unknown scenario \"nope\""),
        (&["run", "--scenario", "heartbeat", "--seed", "-4"], "--seed"),
        (&["check-determinism", "--scenario", "heartbeat", "--seeds", "9..3"], "is empty"),
        (&["check-determinism", "--scenario", "heartbeat", "--seeds", "x"], "is not a seed"),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (arguments, expected) in cases {
        let output = esper(arguments);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{arguments:?}: expected {expected:?} in {stderr}");
    }
}

#[test]
fn check_determinism_reports_success_for_a_seed_range() {
    let output = esper(&["check-determinism", "--scenario", "heartbeat", "--seeds", "0..5"]);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("deterministic: scenario=heartbeat seeds=0..=4"));
}

#[test]
fn every_subcommand_has_help() {
    for subcommand in ["scenarios", "run", "check-determinism", "harness", "gate"] {
        let output = esper(&[subcommand, "--help"]);
        assert!(output.status.success(), "{subcommand}: {output:?}");
        assert!(stdout(&output).contains("Usage: esper"), "{subcommand}");
    }
}
