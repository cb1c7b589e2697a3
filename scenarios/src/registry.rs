//! Every scenario the CLI knows, by name.

use esper_sim::SimScenario;

use crate::control_loop::{ControlLoopScenario, RollbackDeadlineScenario, TolariaCrashScenario};
use crate::heartbeat::HeartbeatScenario;
use crate::kasmina_prefetch::KasminaPrefetchScenario;
use crate::nissa::NissaScenario;
use crate::oona_bus::OonaBusScenario;
use crate::oona_ledger::OonaLedgerScenario;
use crate::rc1::sim::TrainingScenario;
use crate::rc1::training::TrainingDrill;
use crate::simic::SimicScenario;
use crate::tezzeret_forge::TezzeretForgeScenario;
use crate::wal_soak::sim::WalSoakScenario;
use crate::weatherlight::WeatherlightScenario;

static HEARTBEAT: HeartbeatScenario = HeartbeatScenario::new();
static WAL_SOAK: WalSoakScenario = WalSoakScenario;
static CONTROL_LOOP: ControlLoopScenario = ControlLoopScenario::synthetic();
static MORPHOGENESIS: ControlLoopScenario = ControlLoopScenario::morphogenesis();
static OONA_BUS: OonaBusScenario = OonaBusScenario;
static OONA_LEDGER: OonaLedgerScenario = OonaLedgerScenario::new();
static CONTROL_LOOP_TCH: ControlLoopScenario = ControlLoopScenario::tch_cpu();
static MORPHOGENESIS_TCH: ControlLoopScenario = ControlLoopScenario::morphogenesis_tch();

/// The scenarios that train on libtorch: registered only in builds with the `tch`
/// feature, and their traces promised per machine only (libtorch picks its CPU
/// kernels per machine), so the all-scenario determinism, fast-forward and pinned
/// hash tests leave them to `tests/control_loop_tch.rs`.
pub const LIBTORCH_ONLY: &[&str] = &["control-loop-tch", "morphogenesis-tch"];
static TOLARIA_CRASH: TolariaCrashScenario = TolariaCrashScenario;
static ROLLBACK_DEADLINE: RollbackDeadlineScenario = RollbackDeadlineScenario;
static RC1_STEADY_TRAIN: TrainingScenario = TrainingScenario::rc1(TrainingDrill::SteadyTrain);
static RC1_ROLLBACK: TrainingScenario = TrainingScenario::rc1(TrainingDrill::Rollback);
static RC1_TAMIYO_TIMEOUT: TrainingScenario = TrainingScenario::rc1(TrainingDrill::TamiyoTimeout);
static KASMINA_PREFETCH: KasminaPrefetchScenario = KasminaPrefetchScenario::new();
static NISSA: NissaScenario = NissaScenario;
static WEATHERLIGHT: WeatherlightScenario = WeatherlightScenario;
static TEZZERET_FORGE: TezzeretForgeScenario = TezzeretForgeScenario;
static SIMIC: SimicScenario = SimicScenario;

/// All scenarios, in the order `esper scenarios` lists them. The
/// [`LIBTORCH_ONLY`] ones are listed only in builds with the `tch` feature, the
/// only ones that can run them.
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
        &NISSA,
        &WEATHERLIGHT,
        &TEZZERET_FORGE,
        &SIMIC,
        &MORPHOGENESIS,
    ];
    if cfg!(feature = "tch") {
        all.extend([&CONTROL_LOOP_TCH as &dyn SimScenario, &MORPHOGENESIS_TCH]);
    }
    all
}

/// The scenario called `name`.
pub fn find(name: &str) -> Result<&'static dyn SimScenario, UnknownScenario> {
    all().into_iter().find(|scenario| scenario.name() == name).ok_or_else(|| UnknownScenario(name.to_owned()))
}

/// A scenario name that is not in the registry.
#[derive(Debug, thiserror::Error)]
#[error("unknown scenario {0:?}; `esper scenarios` lists them: {names}", names = names().join(", "))]
pub struct UnknownScenario(pub String);

/// The registered names.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|scenario| scenario.name()).collect()
}
