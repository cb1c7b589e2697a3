//! Every scenario the CLI knows, by name.

use esper_sim::SimScenario;

use crate::heartbeat::HeartbeatScenario;
use crate::wal_soak::sim::WalSoakScenario;

static HEARTBEAT: HeartbeatScenario = HeartbeatScenario::new();
static WAL_SOAK: WalSoakScenario = WalSoakScenario;

/// All scenarios, in the order `esper scenarios` lists them.
pub fn all() -> [&'static dyn SimScenario; 2] {
    [&HEARTBEAT, &WAL_SOAK]
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
