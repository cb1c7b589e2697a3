//! Nissa in the simulated world: `esper fault-drills` passes every drill, and
//! the drills catch a Nissa whose alerts do not behave as the catalog says.
//! (The `nissa` scenario itself runs over 200 seeds in `determinism.rs`.)

use std::process::Command;

use esper_core::nissa::NissaConfig;
use esper_core::nissa::alerts::{ALERT_NAMES, TrainingLatencyRule};
use esper_scenarios::nissa::{catalog_drills, fault_drills_with, sim_config};

#[test]
fn fault_drills_command_passes_every_alert() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_esper")).args(["fault-drills", "--seed", "5"]).output().expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), ALERT_NAMES.len(), "{stdout}");
    for (line, alert) in lines.iter().zip(ALERT_NAMES) {
        assert!(line.starts_with(alert) && line.contains(" PASS "), "{line}");
    }
}

/// Drills written for RC1's thresholds, run against a Nissa on the runbook's
/// 18 ms rule: the "normal" epochs (150 ms) are still slow there, so the latency
/// alert fires on time but never clears, and the drill — and the command — fail.
#[test]
fn drills_catch_an_alert_that_never_clears() {
    let drills = catalog_drills(&sim_config());
    let runbook = NissaConfig { training_latency_rule: TrainingLatencyRule::Runbook, ..sim_config() };
    let report = fault_drills_with(5, runbook, drills);
    assert!(!report.passed());
    let latency = report.drills.iter().find(|drill| drill.alert == "training_latency_high").expect("ran");
    assert_eq!((latency.fired_after, latency.cleared_after), (Some(3), None), "{latency}");
    assert!(report.drills.iter().filter(|drill| drill.alert != "training_latency_high").all(|drill| drill.passed()));
    assert!(report.run.to_string().contains("fault drills failed"), "{}", report.run);
}
