//! `oona-bus`: Oona's integration checks inside the sim, against the simulated
//! Redis host over turmoil TCP. `tests/oona_bus.rs` runs the very same checks
//! against a real `redis-server`.

use esper_sim::redis::ServerConfig;
use esper_sim::{SimScenario, TurmoilConnector, World};
use rand::RngCore;

use crate::sim::oona_checks::{BusFixture, Resetter, run_all};

/// Redis's port inside the world.
pub const REDIS_PORT: u16 = 6379;

/// The scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct OonaBusScenario;

impl SimScenario for OonaBusScenario {
    fn name(&self) -> &'static str {
        "oona-bus"
    }

    fn summary(&self) -> &'static str {
        "Oona's integration checks (backpressure, retries, dead letters, reconnect) against the simulated Redis"
    }

    fn populate(&self, world: &mut World) {
        let handle = world.redis("redis", REDIS_PORT, ServerConfig::default());
        let seed = world.rng().stream("oona-bus").next_u64();
        let fixture = BusFixture {
            connector: TurmoilConnector,
            host: "redis".to_owned(),
            port: REDIS_PORT,
            resetter: Resetter::Handle(handle),
            seed,
        };
        world.client("checks", async move { run_all(&fixture).await.map_err(Into::into) });
    }
}
