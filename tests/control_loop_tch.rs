//! `control-loop-tch`: the control loop on libtorch CPU under the sim. The trainer,
//! Tamiyo and Kasmina are the same code as on the synthetic device; the run must pass
//! its checks (loss falls, the cut is felt, Tamiyo is back after the repair) and be
//! bit-identical when rerun. Built only with `--features tch` (ci/test does).
#![cfg(feature = "tch")]

use esper_scenarios::registry;
use esper_sim::check_determinism;

#[test]
fn control_loop_on_libtorch_cpu_passes_and_reruns_identically() {
    let scenario = registry::find("control-loop-tch").expect("registered in tch builds");
    for seed in 0..10 {
        match check_determinism(scenario, seed) {
            Ok(report) => assert!(report.passed(), "{report}"),
            Err(divergence) => panic!("{divergence}"),
        }
    }
}
