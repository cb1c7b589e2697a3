//! Same seed + same commit ⇒ same trace hash; and the checker catches a leak.

use esper_scenarios::drills::hang::{self, HANG_AFTER};
use esper_scenarios::registry;
use esper_scenarios::sim::heartbeat::HeartbeatScenario;
use esper_sim::{TraceMode, check_determinism, run_scenario};

mod support;

use support::seeds::dst_seeds;

/// 200 seeds of one scenario (fewer under `ESPER_DST_SEEDS`, see
/// `support::seeds`), each run twice in fresh worlds: identical traces, and every
/// run passes its own safety and liveness checks.
fn deterministic_over_200_seeds(name: &str) {
    let scenario = registry::find(name).expect("registered");
    for seed in 0..dst_seeds(200) {
        // A loop that never awaits and logs nothing is named, not left to nextest's timeout.
        let _watch =
            hang::watch(HANG_AFTER, format!("determinism: {name} seed {seed}"), hang::determinism_rerun(name, seed));
        match check_determinism(scenario, seed) {
            Ok(report) => assert!(report.passed(), "{report}"),
            Err(divergence) => panic!("{divergence}"),
        }
    }
}

/// One test per scenario, so nextest spreads them over the cores and each has its
/// own time limit; the last test keeps the list equal to the registry.
macro_rules! determinism_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                deterministic_over_200_seeds($name);
            }
        )*
        const COVERED: &[&str] = &[$($name),*];
    };
}

determinism_tests! {
    heartbeat_is_deterministic => "heartbeat",
    control_loop_is_deterministic => "control-loop",
    tolaria_crash_is_deterministic => "tolaria-crash",
    rollback_deadline_is_deterministic => "rollback-deadline",
    wal_soak_is_deterministic => "wal-soak",
    oona_bus_is_deterministic => "oona-bus",
    oona_ledger_is_deterministic => "oona-ledger",
    rc1_steady_train_is_deterministic => "rc1-steady-train",
    rc1_rollback_is_deterministic => "rc1-rollback",
    rc1_tamiyo_timeout_is_deterministic => "rc1-tamiyo-timeout",
    kasmina_prefetch_is_deterministic => "kasmina-prefetch",
    kasmina_prefetch_outage_is_deterministic => "kasmina-prefetch-outage",
    kasmina_lifecycle_is_deterministic => "kasmina-lifecycle",
    tamiyo_risk_is_deterministic => "tamiyo-risk",
    nissa_is_deterministic => "nissa",
    weatherlight_is_deterministic => "weatherlight",
    tezzeret_forge_is_deterministic => "tezzeret-forge",
    simic_is_deterministic => "simic",
    morphogenesis_is_deterministic => "morphogenesis",
}

/// The libtorch scenarios need libtorch; `tests/control_loop_tch.rs` checks them.
#[test]
fn every_registered_scenario_has_a_determinism_test() {
    let missing: Vec<&str> = registry::names()
        .into_iter()
        .filter(|name| !COVERED.contains(name) && !registry::libtorch_only().contains(name))
        .collect();
    assert!(missing.is_empty(), "add these scenarios to determinism_tests!: {missing:?}");
}

/// A random draw outside the seeded tree (a randomly-keyed hasher feeding the
/// monitor's jitter) makes two runs of one seed differ, and the checker names the
/// first event where they part ways.
#[test]
fn check_determinism_catches_an_entropy_leak_and_names_the_event() {
    let leaky = HeartbeatScenario::with_entropy_leak();
    let divergence = check_determinism(&leaky, 7).expect_err("a leaky scenario must not pass the determinism check");
    assert_ne!(divergence.hashes[0], divergence.hashes[1]);
    assert_ne!(divergence.first, divergence.second, "the named events must differ");
    let first = divergence.first.as_deref().unwrap_or_default();
    // The leak moves the monitor's beats: the first line to differ is a beat's
    // own event or the network's send of it (whichever the trace has first).
    let on_the_beats = |line: &str| line.contains("heartbeat") || line.contains("message=send stream=weatherlight:");
    assert!(on_the_beats(first), "expected a heartbeat event or its send, got {first:?}");
    let message = divergence.to_string();
    assert!(message.contains("seed=7"), "{message}");
    assert!(message.contains(&format!("event #{}", divergence.index)), "{message}");
    assert!(message.contains("--seeds 7..=7"), "replay command missing: {message}");
}

/// Different seeds draw different partitions and jitter, so their traces differ.
#[test]
fn different_seeds_give_different_hashes() {
    let scenario = registry::find("heartbeat").expect("registered");
    let hashes: std::collections::BTreeSet<String> =
        (0..20).map(|seed| run_scenario(scenario, seed, TraceMode::Hash).hash).collect();
    assert_eq!(hashes.len(), 20);
}

/// The partition is visible in the trace, in order: injected, beats missed, repaired, beats acknowledged.
#[test]
fn trace_shows_the_partition_and_the_recovery() {
    let report = run_scenario(registry::find("heartbeat").expect("registered"), 7, TraceMode::Full);
    assert!(report.passed(), "{report}");
    let position = |needle: &str| {
        report.lines.iter().position(|line| line.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in trace"))
    };
    let partition = position("kind=\"partition\"");
    let missed = position("heartbeat missed");
    let repair = position("kind=\"repair\"");
    assert!(partition < missed && missed < repair, "partition {partition}, miss {missed}, repair {repair}");
    assert!(report.lines[repair..].iter().any(|line| line.contains("heartbeat acknowledged")));
    assert_eq!(report.events as usize, report.lines.len());
}
