//! insta snapshots of the telemetry the RC1 scenarios emit at fixed seeds: every
//! packet Tolaria (or, for the prefetch burst, Kasmina) published, decoded to JSON,
//! in order. Sim runs are snapshotted
//! exactly; the real-profile run keeps the structure and redacts what wall time
//! decides (timestamps, latencies). CI runs with `INSTA_UPDATE=no`: a changed
//! packet fails with a diff, to be reviewed (`cargo insta review`), never accepted
//! blindly.

use esper_core::leyline::TelemetryPacket;
use esper_scenarios::rc1::sim::{self, sim_defaults};
use esper_scenarios::rc1::training::TrainingWorkload;
use esper_scenarios::rc1::{HarnessConfig, Profile, Rc1Scenario, run_scenario};
use esper_scenarios::real::real_profile::{DevKey, RedisTarget, signing_key};
use serde_json::Value;

const SEED: u64 = 42;

fn assert_snapshot(name: &str, telemetry: &Value) {
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_json_snapshot!(name, telemetry);
    });
}

fn sim_telemetry(workload: TrainingWorkload) -> Value {
    let (outcome, report) = sim::run(workload, sim_defaults(), SEED).unwrap_or_else(|error| panic!("{error}"));
    assert!(report.passed(), "{report}");
    serde_json::to_value(&outcome.telemetry).expect("packets serialise")
}

#[test]
fn rc1_steady_train_telemetry() {
    assert_snapshot("rc1_steady_train_sim_seed42", &sim_telemetry(TrainingWorkload::SteadyTrain));
}

#[test]
fn rc1_rollback_telemetry() {
    assert_snapshot("rc1_rollback_sim_seed42", &sim_telemetry(TrainingWorkload::Rollback));
}

#[test]
fn rc1_tamiyo_timeout_telemetry() {
    assert_snapshot("rc1_tamiyo_timeout_sim_seed42", &sim_telemetry(TrainingWorkload::TamiyoTimeout));
}

#[test]
fn rc1_kasmina_prefetch_telemetry() {
    let config = HarnessConfig {
        profile: Profile::Sim,
        seed: SEED,
        training: sim_defaults(),
        prefetch: esper_scenarios::rc1::prefetch::RC1_BURST,
        redis: RedisTarget::Embedded,
        key: None,
        output_dir: std::env::temp_dir(),
    };
    let run = run_scenario(Rc1Scenario::KasminaPrefetch, &config).unwrap_or_else(|error| panic!("{error}"));
    let telemetry = serde_json::to_value(&run.telemetry).expect("packets serialise");
    assert_snapshot("rc1_kasmina_prefetch_sim_seed42", &telemetry);
}

/// Whether a metric or attribute carries a wall-clock measurement.
fn is_timing(name: &str) -> bool {
    name.contains("latency") || name.ends_with("_ms") || name == "slo.tolaria_latency_actual"
}

/// Replaces what wall time decides with `"[redacted]"`, keeping every field.
fn redact_timings(packets: &[TelemetryPacket]) -> Value {
    let mut value = serde_json::to_value(packets).expect("packets serialise");
    for packet in value.as_array_mut().into_iter().flatten() {
        packet["timestamp"] = Value::from("[redacted]");
        for metric in packet["metrics"].as_array_mut().into_iter().flatten() {
            if metric["name"].as_str().is_some_and(is_timing) {
                metric["value"] = Value::from("[redacted]");
            }
        }
        for event in packet["events"].as_array_mut().into_iter().flatten() {
            for (key, attribute) in event["attributes"].as_object_mut().into_iter().flatten() {
                if is_timing(key) {
                    *attribute = Value::from("[redacted]");
                }
            }
        }
    }
    value
}

#[test]
fn rc1_steady_train_real_profile_telemetry_structure() {
    let output_dir = std::env::temp_dir().join(format!("esper-snapshot-real-{}", std::process::id()));
    let config = HarnessConfig {
        profile: Profile::Real,
        seed: SEED,
        training: esper_scenarios::rc1::training::TrainingParams {
            step_cost: std::time::Duration::ZERO,
            ..sim_defaults()
        },
        prefetch: esper_scenarios::rc1::prefetch::RC1_BURST,
        redis: RedisTarget::Embedded,
        key: Some(signing_key(|_| None, DevKey::Allowed).expect("a dev key")),
        output_dir,
    };
    let run = run_scenario(Rc1Scenario::SteadyTrain, &config).unwrap_or_else(|error| panic!("{error}"));
    assert_snapshot("rc1_steady_train_real_redacted", &redact_timings(&run.telemetry));
}
