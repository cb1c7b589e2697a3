//! Nissa in the sim: the `nissa` scenario and the `esper alert-checks` command.
//!
//! Both run a world with the simulated Redis, a `nissa` host (the real service:
//! ingest loop and axum HTTP on port 9100 over turmoil TCP) and a client that
//! publishes telemetry on Oona and reads Nissa back over HTTP (its host is still
//! called `drills`, as are the packets it sends: the names are in pinned traces).
//!
//! * `esper alert-checks` runs the alert checks ([`alert_checks`]) alone and reports each.
//! * The `nissa` scenario first crashes and restarts Redis (times drawn from the
//!   seed) and requires the ingest loop to notice and recover; then it runs the
//!   alert checks, feeds bad envelopes and oversized HTTP requests ([`checks`]), and
//!   compares burn rates with a hand-computed example.

pub mod alert_checks;
pub mod checks;
pub mod probe;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::{SigningKey, VerifyPolicy};
use esper_core::nissa::alerts::default_rules;
use esper_core::nissa::{self, Nissa, NissaConfig};
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_sim::redis::ServerConfig;
use esper_sim::{
    Fault, FaultSchedule, Incarnations, RngTree, RunReport, ScheduledFault, SimScenario, TraceMode, TurmoilConnector,
    World,
};
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use crate::sim::control_loop::hosts::sim_clock;
use crate::sim::oona_bus::REDIS_PORT;
use crate::sim::oona_checks::{BusFixture, Resetter};
use alert_checks::{AlertCheck, AlertCheckResult, AlertRig};
use probe::Probe;

trace_target!("nissa");

/// Nissa's host name.
pub const NISSA: &str = "nissa";
/// Nissa's HTTP port (its default).
pub const NISSA_PORT: u16 = 9_100;
const REDIS: &str = "redis";
/// The alert client's host (named before "drill" meant only generated fault
/// schedules; kept, as it is in the pinned trace hashes).
const ALERT_CLIENT: &str = "drills";
/// The bus secret every host of these worlds shares.
const SECRET: &[u8] = b"esper-sim-nissa";
/// Polls of Nissa's summary (10 ms apart) the client waits through for recovery.
const RECOVERY_POLLS: u32 = 5_000;

/// Nissa's settings in the sim: SLO windows of 500 ms and 2 s, so the
/// burn-rate example fits in a simulated second or two.
pub fn sim_config() -> NissaConfig {
    NissaConfig { slo_windows: vec![Duration::from_millis(500), Duration::from_secs(2)], ..NissaConfig::default() }
}

/// Oona settings for Nissa in the sim: short blocking reads and timeouts, so an
/// outage is noticed within a simulated second.
fn bus_config(consumer: &str) -> StreamConfig {
    StreamConfig {
        consumer: consumer.to_owned(),
        block: Duration::from_millis(20),
        command_timeout: Duration::from_secs(1),
        reconnect_cap: Duration::from_secs(1),
        reconnect_attempts: 4,
        ..nissa::bus_config(StreamConfig::default())
    }
}

/// An Oona client on the world's Redis.
fn bus(consumer: &str, clock: UnixClock, rng: ChaCha8Rng) -> Result<OonaClient<TurmoilConnector, ChaCha8Rng>, String> {
    let key = SigningKey::new(SECRET.to_vec()).map_err(|error| error.to_string())?;
    let parts = ClientParts { key, verify: VerifyPolicy::default(), clock, rng };
    Ok(OonaClient::new(TurmoilConnector, REDIS, REDIS_PORT, bus_config(consumer), parts))
}

/// Registers the `nissa` host; each life draws fresh randomness.
pub fn nissa_host(world: &mut World, config: NissaConfig) {
    let lives = Incarnations::new(world.rng().child(NISSA));
    world.host(NISSA, move || {
        let (life, config) = (lives.next(), config.clone());
        async move {
            let clock = sim_clock();
            let nissa = Nissa::new(config, clock)?;
            let bus = bus(NISSA, clock, life.stream("bus"))?;
            nissa::run(TurmoilConnector, nissa, bus, life.stream("retry")).await?;
            Ok(())
        }
    });
}

/// What the alert client does after the alert checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// The checks only (`esper alert-checks`).
    AlertChecks,
    /// Recovery from a Redis crash first; bad input and burn rates after.
    Scenario,
}

/// Registers the alert client (host `drills`) running `checks`; results are appended to `results`.
fn alert_client(
    world: &mut World,
    extent: Extent,
    checks: Vec<AlertCheck>,
    results: Rc<RefCell<Vec<AlertCheckResult>>>,
) {
    let rng = world.rng().child(ALERT_CLIENT);
    world.client(ALERT_CLIENT, async move { drive(extent, &checks, &results, &rng).await.map_err(Into::into) });
}

async fn drive(
    extent: Extent,
    checks: &[AlertCheck],
    results: &RefCell<Vec<AlertCheckResult>>,
    rng: &RngTree,
) -> Result<(), String> {
    let probe = Probe { connector: TurmoilConnector, host: NISSA.to_owned(), port: NISSA_PORT };
    probe.wait_ready(1_000).await?;
    if extent == Extent::Scenario {
        probe
            .wait_for("the ingest loop to fail over the Redis crash and recover", RECOVERY_POLLS, |summary| {
                let health = &summary["health"];
                health["failed_rounds"].as_u64() >= Some(1) && health["redis_up"] == true
            })
            .await?;
        tracing::info!(target: TRACE_TARGET, "nissa: ingest recovered from the Redis crash");
    }
    let clock = sim_clock();
    let mut rig = AlertRig::new(bus(ALERT_CLIENT, clock, rng.stream("bus"))?, probe.clone()).await?;
    for check in checks {
        let result = rig.run(check).await?;
        results.borrow_mut().push(result);
    }
    let failed: Vec<String> =
        results.borrow().iter().filter(|result| !result.passed()).map(ToString::to_string).collect();
    if !failed.is_empty() {
        return Err(format!("fault drills failed:\n{}", failed.join("\n")));
    }
    if extent == Extent::AlertChecks {
        return Ok(());
    }
    let fixture = BusFixture {
        connector: TurmoilConnector,
        host: REDIS.to_owned(),
        port: REDIS_PORT,
        resetter: Resetter::ClientKill,
        seed: rng.stream("admin").next_u64(),
    };
    let mut admin = fixture.admin().await?;
    checks::bad_envelopes(&mut rig, &mut admin, clock.now_ms(), &mut rng.stream("frames")).await?;
    checks::oversized_requests(&probe).await?;
    checks::burn_rates(&mut rig).await
}

/// The `nissa` scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct NissaScenario;

impl SimScenario for NissaScenario {
    fn name(&self) -> &'static str {
        "nissa"
    }

    fn summary(&self) -> &'static str {
        "Nissa ingests from the simulated Redis across a Redis crash; every alert drill fires and clears on time; bad input is dead-lettered; burn rates match a hand count"
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("nissa");
        let crash = draws.random_range(300..800);
        let restart = crash + draws.random_range(200..1_000);
        FaultSchedule::new(vec![
            ScheduledFault { at_ms: crash, fault: Fault::Crash { host: REDIS.to_owned() } },
            ScheduledFault { at_ms: restart, fault: Fault::Restart { host: REDIS.to_owned() } },
        ])
    }

    fn populate(&self, world: &mut World) {
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        nissa_host(world, sim_config());
        alert_client(world, Extent::Scenario, catalog_checks(&sim_config()), Rc::default());
    }
}

/// What `esper alert-checks` found.
#[derive(Debug)]
pub struct AlertCheckReport {
    /// The world's run (seed, hash, outcome).
    pub run: RunReport,
    /// One result per alert, in catalog order.
    pub checks: Vec<AlertCheckResult>,
}

impl AlertCheckReport {
    /// Every check ran and passed.
    pub fn passed(&self) -> bool {
        self.run.passed() && !self.checks.is_empty() && self.checks.iter().all(AlertCheckResult::passed)
    }
}

/// The checks for the alert catalog `config` selects.
pub fn catalog_checks(config: &NissaConfig) -> Vec<AlertCheck> {
    alert_checks::alert_checks(&default_rules(config.training_latency_rule, config.prefetch_rule))
}

/// Runs every alert check against a Nissa in a world seeded with `seed`.
pub fn alert_checks_run(seed: u64) -> AlertCheckReport {
    let config = sim_config();
    let checks = catalog_checks(&config);
    alert_checks_with(seed, config, checks)
}

/// Runs `checks` against a Nissa configured with `config` (tests plant a
/// mismatch between the two to see the checks catch it).
pub fn alert_checks_with(seed: u64, config: NissaConfig, checks: Vec<AlertCheck>) -> AlertCheckReport {
    let mut world = World::new(seed, FaultSchedule::default());
    world.redis(REDIS, REDIS_PORT, ServerConfig::default());
    nissa_host(&mut world, config);
    let results = Rc::default();
    alert_client(&mut world, Extent::AlertChecks, checks, Rc::clone(&results));
    let run = world.run("fault-drills", TraceMode::Hash);
    let checks = results.take();
    AlertCheckReport { run, checks }
}
