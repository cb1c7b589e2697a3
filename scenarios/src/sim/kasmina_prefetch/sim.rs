//! The burst in one seeded world: `urza` (the kernel service), `redis` (the
//! simulated Redis) and `kasmina` (the coordinator, the client that ends the run).
//!
//! The links have no latency and hosts run in registration order (`urza`,
//! `redis`, `kasmina`), so Urza → Redis → Kasmina happens inside one 1 ms tick:
//! the sim's stand-in for a sub-millisecond LAN. What Kasmina measures is then
//! Urza's modelled latency plus whatever the coordinator and Oona add on top
//! (a reader still acking the previous answer, two answers due in the same
//! millisecond on one connection) — which is what the bench is there to show.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use esper_core::kasmina::PrefetchCoordinator;
use esper_core::leyline::VerifyPolicy;
use esper_core::oona::{ClientParts, OonaClient};
use esper_core::urza::serve_kernels;
use esper_sim::redis::ServerConfig;
use esper_sim::{
    Fault, FaultSchedule, Incarnations, RngTree, ScheduledFault, SimScenario, TraceMode, TurmoilConnector, World,
    WorldConfig,
};
use rand_chacha::ChaCha8Rng;

use super::{BurstConfig, BurstError, BurstReport, bench_library, burst, stream_config};
use crate::sim::control_loop::hosts::{signing_key, sim_clock};

trace_target!("kasmina_prefetch::sim");

pub(super) const URZA: &str = "urza";
pub(super) const REDIS: &str = "redis";
pub(super) const KASMINA: &str = "kasmina";
pub(super) const REDIS_PORT: u16 = 6379;
/// Kasmina starts its burst this long after the world starts.
pub(super) const WARM_UP: Duration = Duration::from_millis(500);

/// The scenario; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct KasminaPrefetchScenario {
    config: BurstConfig,
    urza_partitioned: bool,
}

impl KasminaPrefetchScenario {
    /// The bench as registered: the default burst, checked against the model.
    pub const fn new() -> Self {
        let config = BurstConfig {
            seed: 0,
            requests: 300,
            concurrency: 6,
            ready_latency_ms: 40,
            jitter_ms: 8,
            timeout_ms: 1_000,
        };
        Self { config, urza_partitioned: false }
    }

    /// A burst of this shape (its `seed` is ignored: the run's seed rules).
    pub const fn with_config(config: BurstConfig) -> Self {
        Self { config, urza_partitioned: false }
    }

    /// The timeout drill: Urza is cut off from Redis from the start, so no
    /// request is ever answered. Every request must time out, be served by the
    /// fallback kernel, and the burst must end. Not registered.
    pub const fn urza_partitioned(config: BurstConfig) -> Self {
        Self { config, urza_partitioned: true }
    }

    /// Registers the hosts; the returned slot holds Kasmina's report once the
    /// run is over.
    fn populate_with(&self, world: &mut World) -> Rc<RefCell<Option<BurstReport>>> {
        let config = BurstConfig { seed: world.seed(), ..self.config };
        serve_urza(world, config);
        let slot = Rc::new(RefCell::new(None));
        let report = Rc::clone(&slot);
        let rng = world.rng().child(KASMINA);
        let check = !self.urza_partitioned;
        world.client(KASMINA, async move {
            let (requests, replies) =
                (client(KASMINA, rng.stream("bus.requests"))?, client(KASMINA, rng.stream("bus.replies"))?);
            // Urza starts before Redis listens and reconnects with backoff; the
            // bench measures Urza serving, not Urza starting.
            tokio::time::sleep(WARM_UP).await;
            let coordinator = PrefetchCoordinator::new(requests, replies, config.prefetch(KASMINA), sim_clock());
            let result = match burst(coordinator, config, "sim").await {
                Ok(result) => result,
                // A broken invariant is named as itself, not as a host error.
                Err(BurstError::Telemetry(violation)) => return Err(violation.into()),
                Err(error) => return Err(error.to_string().into()),
            };
            tracing::info!(
                target: TRACE_TARGET,
                mean_ms = result.mean_ms,
                p95_ms = result.p95_ms,
                ok = result.counters.ok,
                "kasmina-prefetch burst done"
            );
            let verdict = if check { result.check_acceptance() } else { Ok(()) };
            *report.borrow_mut() = Some(result);
            verdict.map_err(Into::into)
        });
        slot
    }
}

impl Default for KasminaPrefetchScenario {
    fn default() -> Self {
        Self::new()
    }
}

impl SimScenario for KasminaPrefetchScenario {
    fn name(&self) -> &'static str {
        if self.urza_partitioned { "kasmina-prefetch-urza-partitioned" } else { "kasmina-prefetch" }
    }

    fn summary(&self) -> &'static str {
        "Kasmina prefetches 300 kernels from Urza over Oona, 6 at a time; latencies must match Urza's 40 ± 8 ms model"
    }

    fn world_config(&self) -> WorldConfig {
        // The default burst takes about 2.5 s of sim time, and one in which
        // every request times out (300 at 6 in flight, 1 s each) 50 s; a batch
        // that never ends (a request lost in flight) is a liveness violation
        // at 120 s, not a test that runs on until the wall-clock timeout.
        burst_world(Duration::from_secs(120))
    }

    fn schedule(&self, _rng: &RngTree) -> FaultSchedule {
        if !self.urza_partitioned {
            return FaultSchedule::default();
        }
        let fault = Fault::Partition { a: URZA.to_owned(), b: REDIS.to_owned() };
        FaultSchedule::new(vec![ScheduledFault { at_ms: 0, fault }])
    }

    fn populate(&self, world: &mut World) {
        let _report = self.populate_with(world);
    }
}

/// Runs the burst once in a fresh world seeded with `config.seed`.
pub fn run_sim(config: &BurstConfig) -> Result<BurstReport, BurstError> {
    run_scenario_burst(&KasminaPrefetchScenario::with_config(*config), config.seed)
}

impl KasminaPrefetchScenario {
    /// Runs this scenario at `seed` and returns Kasmina's report with the trace hash.
    pub fn run_burst(&self, seed: u64) -> Result<BurstReport, BurstError> {
        run_scenario_burst(self, seed)
    }
}

fn run_scenario_burst(scenario: &KasminaPrefetchScenario, seed: u64) -> Result<BurstReport, BurstError> {
    scenario.config.validate()?;
    let schedule = scenario.schedule(&RngTree::new(seed).child("faults"));
    let mut world = World::with_config(seed, schedule, &scenario.world_config());
    let slot = scenario.populate_with(&mut world);
    let run = world.run(scenario.name(), TraceMode::Hash);
    if !run.passed() {
        return Err(BurstError::Sim(run.to_string()));
    }
    let mut report = slot.borrow_mut().take().ok_or_else(|| BurstError::Sim(format!("no report: {run}")))?;
    report.trace_hash = Some(run.hash);
    Ok(report)
}

/// A burst's world: links without latency and hosts in registration order (see
/// the module docs), for `duration` of sim time.
pub(super) fn burst_world(duration: Duration) -> WorldConfig {
    WorldConfig {
        duration,
        min_latency: Duration::ZERO,
        max_latency: Duration::ZERO,
        random_host_order: false,
        ..WorldConfig::default()
    }
}

/// Registers Urza, serving the burst's library, then the simulated Redis.
pub(super) fn serve_urza(world: &mut World, config: BurstConfig) {
    let lives = Incarnations::new(world.rng().child(URZA));
    world.host(URZA, move || {
        let life = lives.next();
        async move {
            let (requests, replies) =
                (client(URZA, life.stream("bus.requests"))?, client(URZA, life.stream("bus.replies"))?);
            let library = bench_library(&config, life.stream("disk")).await.map_err(|e| e.to_string())?;
            serve_kernels(requests, replies, library, config.urza(), life.stream("latency"), sim_clock()).await;
            Ok(())
        }
    });
    world.redis(REDIS, REDIS_PORT, ServerConfig::default());
}

/// A sim Oona client for `who`, signing with the sim key.
pub(super) fn client(who: &str, rng: ChaCha8Rng) -> Result<OonaClient<TurmoilConnector, ChaCha8Rng>, String> {
    let parts = ClientParts { key: signing_key()?, verify: VerifyPolicy::default(), clock: sim_clock(), rng };
    Ok(OonaClient::new(TurmoilConnector, REDIS, REDIS_PORT, stream_config(who, ""), parts))
}
