//! The control loop on libtorch CPU under the sim. The trainer, Tamiyo and Kasmina
//! are the same code as on the synthetic device; each run must pass its checks and
//! be bit-identical when rerun. Built only with `--features tch` (ci/test does).
//!
//! * `control-loop-tch`: loss falls, the cut is felt, Tamiyo is back after the repair.
//! * `morphogenesis-tch`: besides, the seed Tamiyo germinates is grafted into the
//!   libtorch model, fossilizes, and the grown model ends below the same host
//!   trained alone on libtorch by the margin `tests/morphogenesis.rs` asks of the
//!   synthetic device.
//! * `morphogenesis-cuda`: the same on a GPU (the nextest profile `gpu` runs this
//!   binary on GPU runners); without one the run must fail and name the reason.
#![cfg(feature = "tch")]

use esper_core::tolaria::device::cuda_device_count;
use esper_scenarios::registry;
use esper_sim::{RunReport, TraceMode, check_determinism, run_scenario};

/// Seeds of `control-loop-tch`.
const CONTROL_LOOP_SEEDS: std::ops::Range<u64> = 0..10;
/// Seeds of `morphogenesis-tch`: a few, as each runs sixty epochs twice.
const MORPHOGENESIS_SEEDS: std::ops::Range<u64> = 0..4;
/// As `tests/morphogenesis.rs`: the grown model's loss at most 90 % of the host alone's.
const MARGIN_FRACTION: f64 = 0.10;

/// Runs `name` twice per seed; every run passes and reruns identically.
fn passing_runs(name: &str, seeds: std::ops::Range<u64>) -> Vec<RunReport> {
    let scenario = registry::find(name).expect("registered in tch builds");
    let run = |seed| match check_determinism(scenario, seed) {
        Ok(report) => {
            assert!(report.passed(), "{report}");
            report
        }
        Err(divergence) => panic!("{divergence}"),
    };
    seeds.map(run).collect()
}

#[test]
fn control_loop_on_libtorch_cpu_passes_and_reruns_identically() {
    passing_runs("control-loop-tch", CONTROL_LOOP_SEEDS);
}

/// The seed grafted, fossilized, and the grown model ended at most
/// `1 - MARGIN_FRACTION` of the same host trained alone on the same device.
fn assert_grew_a_seed(seed: u64, report: &RunReport) {
    let count = |name: &str| report.tally.get(&format!("morphogenesis.{name}")).copied().unwrap_or_default();
    let (grafted, host_only) = (count("loss_ppm.grafted") as f64 / 1e6, count("loss_ppm.host_only") as f64 / 1e6);
    println!("seed {seed}: grafted {grafted:.4}, host alone {host_only:.4}, fossilized {}", count("fossilized"));
    assert_eq!(count("fossilized"), 1, "seed {seed}: no seed fossilized");
    assert!(
        grafted <= (1.0 - MARGIN_FRACTION) * host_only,
        "seed {seed}: grafted {grafted:.4} not {MARGIN_FRACTION} below the host alone's {host_only:.4}"
    );
}

#[test]
fn morphogenesis_on_libtorch_cpu_grows_a_seed_and_ends_below_the_host_alone() {
    for (seed, report) in MORPHOGENESIS_SEEDS.zip(passing_runs("morphogenesis-tch", MORPHOGENESIS_SEEDS)) {
        assert_grew_a_seed(seed, &report);
    }
}

/// On a GPU, as on the CPU. Without one the run fails with libtorch's reason: a
/// scenario that quietly trained on the CPU instead would pass and fail this test.
/// `ESPER_REQUIRE_CUDA=1` (GPU runners) makes a missing GPU a failure.
#[test]
fn morphogenesis_on_cuda_grows_a_seed_or_says_why_it_cannot() {
    match cuda_device_count() {
        Ok(count) if count > 0 => {
            for (seed, report) in MORPHOGENESIS_SEEDS.zip(passing_runs("morphogenesis-cuda", MORPHOGENESIS_SEEDS)) {
                assert_grew_a_seed(seed, &report);
            }
        }
        unavailable => {
            assert!(
                std::env::var("ESPER_REQUIRE_CUDA").as_deref() != Ok("1"),
                "no CUDA device ({unavailable:?}), and ESPER_REQUIRE_CUDA=1 requires one"
            );
            let scenario = registry::find("morphogenesis-cuda").expect("registered in tch builds");
            let report = run_scenario(scenario, 0, TraceMode::Hash);
            let text = report.to_string();
            println!("without a GPU (cuda_device_count: {unavailable:?}) the run says:\n{text}");
            assert!(!report.passed(), "morphogenesis-cuda passed on a machine without CUDA: {text}");
            assert!(text.contains("CUDA device cuda:0 is not available"), "the failure does not name CUDA: {text}");
        }
    }
}
