//! `esper run` and `esper check-determinism` as the CLI calls them: one run, or
//! every seed of a range run twice, each seed under the hang watchdog (a seed that
//! spins ends the process with its rerun command, see [`crate::drills::hang`]).

use esper_core::planted::Planted;
use esper_sim::{RunReport, SimScenario, TraceMode, check_determinism, replay_command, run_scenario_planted};

use crate::drills::hang;
use crate::seeds::SeedRange;

/// Runs `scenario` at `seed` with `planted` armed, watched.
pub fn run_watched(scenario: &dyn SimScenario, seed: u64, planted: Planted, mode: TraceMode) -> RunReport {
    let rerun = replay_command(scenario.name(), seed, planted, scenario.cargo_features());
    let _watch = hang::watch(hang::HANG_AFTER, format!("run: {} seed {seed}", scenario.name()), rerun);
    run_scenario_planted(scenario, seed, planted, mode)
}

/// Runs every seed of `seeds` twice, watched, and compares the traces: `Ok` when
/// every seed passed with identical traces, else the first divergence or failed
/// run, as text. `progress(done, total)` hears of each seed checked.
pub fn check_seeds(
    scenario: &dyn SimScenario,
    seeds: &SeedRange,
    mut progress: impl FnMut(u128, u128),
) -> Result<(), String> {
    let total = seeds.len();
    for (seed, done) in seeds.seeds().zip(1_u128..) {
        let what = format!("check-determinism: {} seed {seed}", scenario.name());
        let _watch = hang::watch(hang::HANG_AFTER, what, hang::determinism_rerun(scenario.name(), seed));
        let report = check_determinism(scenario, seed).map_err(|divergence| divergence.to_string())?;
        if !report.passed() {
            return Err(report.to_string());
        }
        progress(done, total);
    }
    Ok(())
}
