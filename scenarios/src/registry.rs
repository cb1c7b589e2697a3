//! Every scenario the CLI knows, by name.

use esper_core::planted::Planted;
use esper_sim::SimScenario;

use crate::rc1::sim::TrainingScenario;
use crate::rc1::training::TrainingWorkload;
use crate::sim::control_loop::{ControlLoopScenario, RollbackDeadlineScenario, TolariaCrashScenario};
use crate::sim::heartbeat::HeartbeatScenario;
use crate::sim::kasmina_lifecycle::KasminaLifecycleScenario;
use crate::sim::kasmina_prefetch::{KasminaPrefetchOutageScenario, KasminaPrefetchScenario};
use crate::sim::nissa::NissaScenario;
use crate::sim::oona_bus::OonaBusScenario;
use crate::sim::oona_ledger::OonaLedgerScenario;
use crate::sim::simic::SimicScenario;
use crate::sim::tamiyo_risk::TamiyoRiskScenario;
use crate::sim::tezzeret_forge::TezzeretForgeScenario;
use crate::sim::wal_soak::sim::WalSoakScenario;
use crate::sim::weatherlight::WeatherlightScenario;

static HEARTBEAT: HeartbeatScenario = HeartbeatScenario::new();
static WAL_SOAK: WalSoakScenario = WalSoakScenario;
static CONTROL_LOOP: ControlLoopScenario = ControlLoopScenario::synthetic();
static MORPHOGENESIS: ControlLoopScenario = ControlLoopScenario::morphogenesis();
static OONA_BUS: OonaBusScenario = OonaBusScenario;
static OONA_LEDGER: OonaLedgerScenario = OonaLedgerScenario::new();
static CONTROL_LOOP_TCH: ControlLoopScenario = ControlLoopScenario::tch_cpu();
static MORPHOGENESIS_TCH: ControlLoopScenario = ControlLoopScenario::morphogenesis_tch();
static MORPHOGENESIS_CUDA: ControlLoopScenario = ControlLoopScenario::morphogenesis_cuda();

/// The scenarios that train on libtorch: registered only in builds with the `tch`
/// feature (their [`SimScenario::cargo_features`]), and their traces promised per
/// machine only (libtorch picks its CPU kernels per machine), so the all-scenario
/// determinism, fast-forward and pinned hash tests leave them to
/// `tests/control_loop_tch.rs` (CUDA's also to the GPU).
static LIBTORCH: [&ControlLoopScenario; 3] = [&CONTROL_LOOP_TCH, &MORPHOGENESIS_TCH, &MORPHOGENESIS_CUDA];
static TOLARIA_CRASH: TolariaCrashScenario = TolariaCrashScenario;
static ROLLBACK_DEADLINE: RollbackDeadlineScenario = RollbackDeadlineScenario;
static RC1_STEADY_TRAIN: TrainingScenario = TrainingScenario::rc1(TrainingWorkload::SteadyTrain);
static RC1_ROLLBACK: TrainingScenario = TrainingScenario::rc1(TrainingWorkload::Rollback);
static RC1_TAMIYO_TIMEOUT: TrainingScenario = TrainingScenario::rc1(TrainingWorkload::TamiyoTimeout);
static KASMINA_PREFETCH: KasminaPrefetchScenario = KasminaPrefetchScenario::new();
static KASMINA_PREFETCH_OUTAGE: KasminaPrefetchOutageScenario = KasminaPrefetchOutageScenario;
static KASMINA_LIFECYCLE: KasminaLifecycleScenario = KasminaLifecycleScenario;
static NISSA: NissaScenario = NissaScenario;
static WEATHERLIGHT: WeatherlightScenario = WeatherlightScenario;
static TEZZERET_FORGE: TezzeretForgeScenario = TezzeretForgeScenario;
static SIMIC: SimicScenario = SimicScenario;
static TAMIYO_RISK: TamiyoRiskScenario = TamiyoRiskScenario;

/// All scenarios, in the order `esper scenarios` lists them. The [`LIBTORCH`]
/// ones are listed only in builds with the `tch` feature, the only ones that can
/// run them.
pub fn all() -> Vec<&'static dyn SimScenario> {
    let mut all: Vec<&'static dyn SimScenario> = vec![
        &HEARTBEAT,
        &CONTROL_LOOP,
        &TOLARIA_CRASH,
        &ROLLBACK_DEADLINE,
        &WAL_SOAK,
        &OONA_BUS,
        &OONA_LEDGER,
        &RC1_STEADY_TRAIN,
        &RC1_ROLLBACK,
        &RC1_TAMIYO_TIMEOUT,
        &KASMINA_PREFETCH,
        &KASMINA_PREFETCH_OUTAGE,
        &KASMINA_LIFECYCLE,
        &TAMIYO_RISK,
        &NISSA,
        &WEATHERLIGHT,
        &TEZZERET_FORGE,
        &SIMIC,
        &MORPHOGENESIS,
    ];
    if cfg!(feature = "tch") {
        all.extend(LIBTORCH.map(|scenario| scenario as &dyn SimScenario));
    }
    all
}

/// The scenario called `name`.
pub fn find(name: &str) -> Result<&'static dyn SimScenario, UnknownScenario> {
    all().into_iter().find(|scenario| scenario.name() == name).ok_or_else(|| UnknownScenario(name.to_owned()))
}

/// A scenario name that is not in this build's registry.
#[derive(Debug, thiserror::Error)]
#[error("unknown scenario {0:?}; {hint}", hint = missing_hint(.0))]
pub struct UnknownScenario(pub String);

/// What to do about a missing `name`: a libtorch scenario needs another build (a
/// replay command printed by a `tch` build reaches this in a plain one).
fn missing_hint(name: &str) -> String {
    if libtorch_only().contains(&name) {
        let cargo_run = esper_sim::cargo_run(cargo_features(name), Planted::NONE);
        format!("it trains on libtorch, which this build lacks: {cargo_run} run --scenario {name} …")
    } else {
        format!("`esper scenarios` lists them: {}", names().join(", "))
    }
}

/// The registered names.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|scenario| scenario.name()).collect()
}

/// The names of the libtorch scenarios, in every build.
pub fn libtorch_only() -> Vec<&'static str> {
    LIBTORCH.iter().map(|scenario| scenario.name()).collect()
}

/// The cargo features a build needs to run the scenario called `name` (none for
/// a name no build knows).
pub fn cargo_features(name: &str) -> &'static [&'static str] {
    let libtorch = LIBTORCH.map(|scenario| scenario as &dyn SimScenario);
    all().into_iter().chain(libtorch).find(|scenario| scenario.name() == name).map_or(&[], |s| s.cargo_features())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_not_registered_lists_the_names() {
        let error = find("nope").err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.contains("unknown scenario \"nope\"") && error.contains("heartbeat, control-loop"), "{error}");
    }

    /// What decides the registration and what decides the replay command agree.
    #[test]
    fn exactly_the_libtorch_scenarios_need_the_tch_feature() {
        let libtorch = libtorch_only();
        for name in names().into_iter().chain(libtorch.iter().copied()) {
            let needs_tch = cargo_features(name).contains(&esper_sim::TCH_FEATURE);
            assert_eq!(needs_tch, libtorch.contains(&name), "{name}: needs tch {needs_tch}");
        }
        assert_eq!(libtorch.len(), 3, "{libtorch:?}");
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn a_libtorch_scenario_in_a_plain_build_says_which_build_runs_it() {
        for name in libtorch_only() {
            let error = find(name).err().map(|error| error.to_string()).unwrap_or_default();
            assert!(error.contains("--features tch") && error.contains("ci/setup-libtorch"), "{name}: {error}");
        }
    }
}
