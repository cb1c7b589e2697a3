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
    /// None by default: many scenarios inject their faults inside their hosts (a
    /// stalling collaborator, a corrupted sample, a drawn outage).
    fn schedule(&self, _rng: &RngTree) -> FaultSchedule {
        FaultSchedule::default()
    }

    /// The faults a drill generator may draw for this scenario (`esper sweep`);
    /// `None` for a scenario that only runs its own schedule.
    fn fault_space(&self) -> Option<FaultSpace> {
        None
    }

    /// Registers the hosts and clients.
    fn populate(&self, world: &mut World);

    /// The cargo features a build needs to run this scenario (`tch` for the
    /// libtorch ones), so that the commands printed to rerun it are exact.
    fn cargo_features(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The cargo feature that compiles the planted bugs in.
pub const PLANTED_BUGS_FEATURE: &str = "planted-bugs";
/// The cargo feature that builds the libtorch device, against the libtorch that
/// `ci/setup-libtorch` assembles.
pub const TCH_FEATURE: &str = "tch";

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
    RunReport { cargo_features: scenario.cargo_features(), ..world.run(scenario.name(), mode) }
}

/// The one command that reruns `scenario` at `seed` with `planted` armed, from a
/// checkout of the same commit, in a build with the scenario's `features` (and
/// the planted bugs, when one is armed).
pub fn replay_command(scenario: &str, seed: u64, planted: Planted, features: &[&str]) -> String {
    format!("{} run --scenario {scenario} --seed {seed}{}", cargo_run(features, planted), plant_flag(planted))
}

/// ` --plant <bug>` when `planted` arms one, else nothing: the end of every
/// command Esper prints to rerun a run or a sweep with its planted bug.
pub fn plant_flag(planted: Planted) -> String {
    planted.asked().map(|bug| format!(" --plant {bug}")).unwrap_or_default()
}

/// `cargo run --release --` in a build with a scenario's `features`, plus the
/// planted bugs when `planted` arms one: the start of every command Esper prints
/// to rerun something. With `tch` it first assembles libtorch.
pub fn cargo_run(features: &[&str], planted: Planted) -> String {
    let mut features = features.to_vec();
    if planted.asked().is_some() {
        features.push(PLANTED_BUGS_FEATURE);
    }
    let setup = if features.contains(&TCH_FEATURE) { "eval \"$(ci/setup-libtorch)\" && " } else { "" };
    match features.as_slice() {
        [] => "cargo run --release --".to_owned(),
        _ => format!("{setup}cargo run --release --features {} --", features.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use esper_core::planted::PlantedBug;

    use super::*;

    #[test]
    fn replay_commands_name_the_build_their_scenario_and_planted_bug_need() {
        let leak = Planted::bug(Some(PlantedBug::BlendLeaksIntoHost));
        let cases = [
            ("heartbeat", Planted::NONE, &[][..], "cargo run --release -- run --scenario heartbeat --seed 3"),
            (
                "morphogenesis",
                leak,
                &[][..],
                "cargo run --release --features planted-bugs -- run --scenario morphogenesis --seed 3 --plant blend-leaks-into-host",
            ),
            (
                "morphogenesis-tch",
                leak,
                &[TCH_FEATURE][..],
                "eval \"$(ci/setup-libtorch)\" && cargo run --release --features tch,planted-bugs -- run --scenario morphogenesis-tch --seed 3 --plant blend-leaks-into-host",
            ),
        ];
        for (scenario, planted, features, expected) in cases {
            assert_eq!(replay_command(scenario, 3, planted, features), expected);
        }
    }
}
