//! The contract between a scenario and the world.

use esper_core::planted::Planted;

use crate::fault::FaultSchedule;
use crate::report::RunReport;
use crate::rng::RngTree;
use crate::space::FaultSpace;
use crate::trace::TraceMode;
use crate::world::{World, WorldConfig};

/// A scenario: which hosts run which `esper-core` code, under which faults, and
/// what must hold at the end (checked by its client host, which fails the run by
/// returning a [`crate::Violation`] boxed as turmoil's error).
pub trait SimScenario: Sync + std::fmt::Debug {
    /// Name used on the command line.
    fn name(&self) -> &'static str;

    /// One line for `esper scenarios`.
    fn summary(&self) -> &'static str;

    /// The world's physics; the defaults unless the scenario needs otherwise.
    fn world_config(&self) -> WorldConfig {
        WorldConfig::default()
    }

    /// The faults for this seed, drawn from the `faults` branch of the RNG tree so
    /// they never shift when the code under test draws more or fewer numbers.
    fn schedule(&self, rng: &RngTree) -> FaultSchedule;

    /// The faults a drill generator may draw for this scenario (`esper sweep`);
    /// `None` for a scenario that only runs its own schedule.
    fn fault_space(&self) -> Option<FaultSpace> {
        None
    }

    /// Registers the hosts and clients.
    fn populate(&self, world: &mut World);
}

/// Runs `scenario` once for `seed`, under the faults it draws for that seed.
pub fn run_scenario(scenario: &dyn SimScenario, seed: u64, mode: TraceMode) -> RunReport {
    run_scenario_planted(scenario, seed, Planted::NONE, mode)
}

/// [`run_scenario`] with `planted` armed (`esper run --plant`, test builds only).
pub fn run_scenario_planted(scenario: &dyn SimScenario, seed: u64, planted: Planted, mode: TraceMode) -> RunReport {
    let schedule = scenario.schedule(&RngTree::new(seed).child("faults"));
    run_scenario_with(scenario, seed, schedule, planted, mode)
}

/// Runs `scenario` once for `seed` under `schedule` instead of its own faults (a
/// drill's generated schedule, or one read back from a failure file), with
/// `planted` armed (a no-op outside `planted-bugs` builds).
pub fn run_scenario_with(
    scenario: &dyn SimScenario,
    seed: u64,
    schedule: FaultSchedule,
    planted: Planted,
    mode: TraceMode,
) -> RunReport {
    let mut world = World::with_config(seed, schedule, &scenario.world_config());
    world.plant(planted);
    scenario.populate(&mut world);
    world.run(scenario.name(), mode)
}

/// The one command that reruns `scenario` at `seed` with `planted` armed, from a
/// checkout of the same commit (a planted bug needs the `planted-bugs` build).
pub fn replay_command(scenario: &str, seed: u64, planted: Planted) -> String {
    match planted.asked() {
        Some(bug) => {
            format!(
                "cargo run --release --features planted-bugs -- run --scenario {scenario} --seed {seed} --plant {bug}"
            )
        }
        None => format!("cargo run --release -- run --scenario {scenario} --seed {seed}"),
    }
}
