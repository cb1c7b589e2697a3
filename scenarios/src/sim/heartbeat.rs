//! `heartbeat`: Weatherlight probes Tolaria across a partition.
//!
//! The first scenario that runs `esper-core` code end to end under the sim: the
//! `weatherlight` host runs a [`HeartbeatMonitor`] against the `tolaria` host's
//! heartbeat responder, over simulated TCP, while the link between them is cut for a
//! while and then repaired (both times drawn from the seed). At the end the client
//! checks safety (nothing got through while the link was cut) and liveness (every
//! beat after the repair was answered), and fails the run otherwise.

use std::ops::Range;
use std::time::Duration;

use esper_core::weatherlight::heartbeat::{
    Beat, BeatResult, HeartbeatConfig, HeartbeatLog, HeartbeatMonitor, serve_heartbeats,
};
use esper_sim::{Fault, FaultSchedule, Invariant, RngTree, ScheduledFault, SimScenario, TurmoilConnector, World};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MONITOR: &str = "weatherlight";
const SUBSYSTEM: &str = "tolaria";
/// Slack for comparing the monitor's clock with sim time: one tick either way.
const TICK_SLACK: Duration = Duration::from_millis(1);

/// The scenario. [`HeartbeatScenario::with_entropy_leak`] is the deliberately broken
/// twin the determinism tests use to prove the checker catches a leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatScenario {
    entropy_leak: bool,
}

impl Default for HeartbeatScenario {
    fn default() -> Self {
        Self::new()
    }
}

impl HeartbeatScenario {
    /// The scenario as registered.
    pub const fn new() -> Self {
        Self { entropy_leak: false }
    }

    /// The same scenario, except that the monitor's jitter comes from a
    /// randomly-keyed hasher instead of the run's RNG tree: a draw outside the
    /// seeded tree, exactly the bug the determinism check exists to catch. Test
    /// use only; it is not in the registry.
    pub const fn with_entropy_leak() -> Self {
        Self { entropy_leak: true }
    }

    fn monitor_config() -> HeartbeatConfig {
        HeartbeatConfig::default()
    }

    fn monitor_rng(&self, rng: &RngTree) -> ChaCha8Rng {
        if self.entropy_leak {
            #[allow(clippy::disallowed_types, reason = "the deliberate leak this twin exists for")]
            let leak = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0_u8);
            return ChaCha8Rng::seed_from_u64(leak);
        }
        rng.stream("weatherlight.heartbeat")
    }
}

impl SimScenario for HeartbeatScenario {
    fn name(&self) -> &'static str {
        if self.entropy_leak { "heartbeat-leaky" } else { "heartbeat" }
    }

    fn summary(&self) -> &'static str {
        "Weatherlight heartbeats Tolaria over TCP; the link is partitioned, then repaired"
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("partition");
        let start_ms = draws.random_range(800..1_800);
        let end_ms = start_ms + draws.random_range(300..1_200);
        let link = || (MONITOR.to_owned(), SUBSYSTEM.to_owned());
        let (a, b) = link();
        let partition = ScheduledFault { at_ms: start_ms, fault: Fault::Partition { a, b } };
        let (a, b) = link();
        FaultSchedule::new(vec![partition, ScheduledFault { at_ms: end_ms, fault: Fault::Repair { a, b } }])
    }

    fn populate(&self, world: &mut World) {
        let config = Self::monitor_config();
        let port = config.port;
        let cut = partition_window(world.schedule());
        let rng = self.monitor_rng(world.rng());
        world.host(SUBSYSTEM, move || async move {
            serve_heartbeats(TurmoilConnector, port).await?;
            Ok(())
        });
        world.client(MONITOR, async move {
            let origin = turmoil::sim_elapsed().unwrap_or_default();
            let log = HeartbeatMonitor::new(TurmoilConnector, SUBSYSTEM, config, rng).run().await;
            check(&log, origin, cut).map_err(|detail| Invariant::Scenario.violated(detail).into())
        });
    }
}

/// The sim-time window during which the link was cut.
fn partition_window(schedule: &FaultSchedule) -> Range<Duration> {
    let at = |wanted: &str| {
        schedule.faults().iter().find(|scheduled| scheduled.fault.kind() == wanted).map(|scheduled| scheduled.at_ms)
    };
    let start = at("partition").unwrap_or(u64::MAX);
    let end = at("repair").unwrap_or(u64::MAX);
    Duration::from_millis(start)..Duration::from_millis(end)
}

/// Safety, then liveness (VOPR's order): nothing crossed the cut link, the cut was
/// noticed, and once it healed every beat got through.
fn check(log: &HeartbeatLog, origin: Duration, cut: Range<Duration>) -> Result<(), String> {
    let sent = |beat: &Beat| origin + beat.sent_at;
    for beat in &log.beats {
        if let BeatResult::Acked { rtt_us } = beat.result {
            let returned = sent(beat) + Duration::from_micros(rtt_us);
            if sent(beat) >= cut.start + TICK_SLACK && returned + TICK_SLACK <= cut.end {
                return Err(format!("safety: beat {} was acknowledged while the link was cut ({cut:?})", beat.seq));
            }
        }
    }
    if log.missed() == 0 {
        return Err(format!("safety: no beat was missed although the link was cut during {cut:?}"));
    }
    let after_repair: Vec<&Beat> = log.beats.iter().filter(|beat| sent(beat) >= cut.end + TICK_SLACK).collect();
    if after_repair.is_empty() {
        return Err("liveness: no beat was sent after the repair; the schedule outlasts the monitor".to_owned());
    }
    match after_repair.iter().find(|beat| !matches!(beat.result, BeatResult::Acked { .. })) {
        Some(beat) => Err(format!("liveness: beat {} after the repair was {:?}", beat.seq, beat.result)),
        None => Ok(()),
    }
}
