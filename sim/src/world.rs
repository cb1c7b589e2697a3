//! The world: one seeded turmoil simulation plus Esper's fault executor and trace.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use esper_core::planted::Planted;
use esper_core::tolaria::StepPace;
use esper_core::tolaria::pace::NOMINAL_PERCENT;
use rand::RngCore;

use crate::clock::ClockSkew;
use crate::disk::{SimDisk, SimDiskConfig};
use crate::fault::{Fault, FaultSchedule, FaultTarget};
use crate::invariant::{Invariant, Violation};
use crate::net::TurmoilConnector;
use crate::redis::{DurableStore, FaultHandle, RedisServer, ServerConfig};
use crate::report::{Outcome, RunReport};
use crate::rng::RngTree;
use crate::tally::Tally;
use crate::trace::{TraceMode, TraceRecorder, TraceSubscriber, format_sim_time};

/// Fixed start of sim time (2025-01-01T00:00:00Z): turmoil would otherwise take the
/// wall clock, and anything that prints a timestamp would differ between runs.
const EPOCH_SECS: u64 = 1_735_689_600;

/// The physics of a world. Defaults suit the control-loop scenarios.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldConfig {
    /// Sim time advanced per step.
    pub tick: Duration,
    /// Sim-time budget; a run still going past it fails.
    pub duration: Duration,
    /// Lower bound of one-way message latency.
    pub min_latency: Duration,
    /// Upper bound of one-way message latency.
    pub max_latency: Duration,
    /// Run hosts in a seeded random order each step (the default). Off, they run
    /// in registration order: a message to a host registered later arrives in
    /// the same step, one to an earlier host in the next. A scenario that models
    /// sub-tick links (zero latency) uses that to put a request/answer path
    /// inside one tick.
    pub random_host_order: bool,
    /// Pass idle ticks in one go (the default): between steps, every tick in
    /// which no task is ready, no timer falls due, no message arrives and no
    /// fault is scheduled is skipped, leaving clocks, RNG streams and
    /// schedulers exactly where stepping through it would have; and within a
    /// step, each host with nothing to do in the tick is passed the same way
    /// while the others run. Same trace, less work; off, the world steps every
    /// tick and runs every host in it, as stock turmoil does
    /// (`tests/fast_forward_equivalence.rs` compares the two).
    pub fast_forward: bool,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(1),
            duration: Duration::from_secs(120),
            min_latency: Duration::from_millis(1),
            max_latency: Duration::from_millis(10),
            random_host_order: true,
            fast_forward: true,
        }
    }
}

/// A seeded simulation: hosts, faults and the trace. See the crate docs.
pub struct World {
    seed: u64,
    rng: RngTree,
    schedule: FaultSchedule,
    sim: turmoil::Sim<'static>,
    hosts: BTreeSet<String>,
    /// Hosts registered as clients: turmoil can neither crash nor restart them.
    clients: BTreeSet<String>,
    disks: BTreeMap<String, SimDisk>,
    redis: BTreeMap<String, FaultHandle>,
    clocks: BTreeMap<String, ClockSkew>,
    /// Device paces, set by [`Fault::DeviceSlow`] and [`Fault::DeviceHeal`].
    paces: BTreeMap<String, StepPace>,
    /// The default latency range, restored by [`Fault::LinkHeal`].
    latency: (Duration, Duration),
    /// Links the schedule has cut (pairs in name order).
    cut: BTreeSet<(String, String)>,
    /// Directions the schedule has cut, as (from, to).
    cut_one_way: BTreeSet<(String, String)>,
    /// Links whose messages the schedule holds back (pairs in name order).
    held: BTreeSet<(String, String)>,
    /// Hosts stalled and not yet resumed.
    stalled: BTreeSet<String>,
    /// Hosts crashed and not yet restarted.
    down: BTreeSet<String>,
    /// Counts hosts report for the run report.
    tally: Tally,
    /// The sim-time budget: a run stopped past it failed liveness.
    duration: Duration,
    /// The planted bug this run arms; scenarios pass it to the code under test.
    planted: Planted,
    /// Skip idle ticks between steps ([`WorldConfig::fast_forward`]).
    fast_forward: bool,
    /// Judgements of what the run logged, made once it has passed ([`Self::check_log`]).
    log_checks: Vec<LogCheck>,
}

/// A log check's verdict on its target's lines: `Err` with what is wrong.
type LogVerdict = Box<dyn FnOnce(&[String]) -> Result<(), String>>;

/// One [`World::check_log`]: the target it reads and the verdict it gives.
struct LogCheck {
    target: &'static str,
    invariant: Invariant,
    check: LogVerdict,
}

impl std::fmt::Debug for World {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("World")
            .field("seed", &self.seed)
            .field("schedule", &self.schedule)
            .field("hosts", &self.hosts)
            .field("disks", &self.disks.keys())
            .field("redis", &self.redis.keys())
            .finish_non_exhaustive()
    }
}

impl World {
    /// A world with default physics.
    pub fn new(seed: u64, schedule: FaultSchedule) -> Self {
        Self::with_config(seed, schedule, &WorldConfig::default())
    }

    /// A world with the given physics. turmoil's own randomness (latencies, the
    /// order hosts run in each step) is seeded from the `world/turmoil` stream.
    pub fn with_config(seed: u64, schedule: FaultSchedule, config: &WorldConfig) -> Self {
        let rng = RngTree::new(seed);
        let turmoil_seed = rng.child("world").stream("turmoil").next_u64();
        let mut builder = turmoil::Builder::new();
        builder.rng_seed(turmoil_seed);
        if config.random_host_order {
            builder.enable_random_order();
        }
        let mut sim = builder
            .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
            .tick_duration(config.tick)
            .simulation_duration(config.duration)
            .min_message_latency(config.min_latency)
            .max_message_latency(config.max_latency)
            .build();
        sim.skip_idle_hosts(config.fast_forward);
        Self {
            seed,
            rng,
            schedule,
            sim,
            hosts: BTreeSet::new(),
            clients: BTreeSet::new(),
            disks: BTreeMap::new(),
            redis: BTreeMap::new(),
            clocks: BTreeMap::new(),
            paces: BTreeMap::new(),
            latency: (config.min_latency, config.max_latency),
            cut: BTreeSet::new(),
            cut_one_way: BTreeSet::new(),
            held: BTreeSet::new(),
            stalled: BTreeSet::new(),
            down: BTreeSet::new(),
            tally: Tally::default(),
            duration: config.duration,
            planted: Planted::NONE,
            fast_forward: config.fast_forward,
            log_checks: Vec::new(),
        }
    }

    /// Judges, once the run has otherwise passed, every trace line of the events
    /// logged with `target` (exactly that target, as canonical lines, in order):
    /// `check`'s error fails the run as a violation of `invariant`. For what a
    /// system must tell its operator — a warning with the right fields when it
    /// drops data — which no host can see from inside the run.
    pub fn check_log(
        &mut self,
        target: &'static str,
        invariant: Invariant,
        check: impl FnOnce(&[String]) -> Result<(), String> + 'static,
    ) {
        self.log_checks.push(LogCheck { target, invariant, check: Box::new(check) });
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A handle for hosts to count into; the counts end up in [`RunReport::tally`].
    pub fn tally(&self) -> Tally {
        self.tally.clone()
    }

    /// The faults this world will apply.
    pub fn schedule(&self) -> &FaultSchedule {
        &self.schedule
    }

    /// Arms a planted bug for this run (see `esper_core::planted`); call before
    /// the scenario populates the world.
    pub fn plant(&mut self, planted: Planted) {
        self.planted = planted;
    }

    /// The planted bug this run arms, for a scenario to pass down its configs.
    pub fn planted(&self) -> Planted {
        self.planted
    }

    /// The root of the run's RNG tree; components take named streams from it.
    pub fn rng(&self) -> &RngTree {
        &self.rng
    }

    /// Registers a long-running host (a server). `software` is called again when
    /// the host restarts, so it must build a fresh future each time.
    pub fn host<F, Fut>(&mut self, name: &str, software: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = turmoil::Result> + 'static,
    {
        self.register(name);
        self.sim.host(name, software);
    }

    /// Registers a client host; the run ends when every client has finished.
    pub fn client<Fut>(&mut self, name: &str, software: Fut)
    where
        Fut: Future<Output = turmoil::Result> + 'static,
    {
        self.register(name);
        self.clients.insert(name.to_owned());
        self.sim.client(name, software);
    }

    /// Gives `host` a simulated disk (the first call creates it, later calls return
    /// the same disk). Its crash choices come from the `disk/<host>` stream. The
    /// disk outlives the host's software: a restarted host sees what survived.
    pub fn disk(&mut self, host: &str, config: SimDiskConfig) -> SimDisk {
        let rng = &self.rng;
        self.disks
            .entry(host.to_owned())
            .or_insert_with(|| SimDisk::new(config, rng.child("disk").stream(host)))
            .clone()
    }

    /// The skew of `host`'s wall clock (the first call creates it at zero). A host
    /// that reads Unix time through it feels the schedule's [`Fault::ClockJump`]s.
    pub fn clock_skew(&mut self, host: &str) -> ClockSkew {
        self.clocks.entry(host.to_owned()).or_default().clone()
    }

    /// The pace of `host`'s device (the first call creates it, nominal). A trainer
    /// given it ([`esper_core::tolaria::Trainer::with_pace`]) feels the schedule's
    /// [`Fault::DeviceSlow`]s; the pace outlives the host's software, as a slow
    /// GPU stays slow across a process restart.
    pub fn device_pace(&mut self, host: &str) -> StepPace {
        self.paces.entry(host.to_owned()).or_default().clone()
    }

    /// Runs the simulated Redis on host `name`, serving `port`, with `config`
    /// (its clock origin and `run_id` are set at each start). Writes reach a
    /// durable store every `config.fsync_interval`, which outlives the host: a
    /// [`Fault::Crash`] loses what was written since, and [`Fault::Restart`]
    /// starts a server on what was stored, with a new `run_id` drawn from the
    /// `redis/<name>` stream. The `Redis*` faults act through the returned handle.
    pub fn redis(&mut self, name: &str, port: u16, config: ServerConfig) -> FaultHandle {
        let (store, faults) = (DurableStore::default(), FaultHandle::default());
        let run_ids = Arc::new(Mutex::new(self.rng.child("redis").stream(name)));
        let handle = faults.clone();
        self.host(name, move || {
            let (store, faults, config, run_ids) =
                (store.clone(), faults.clone(), config.clone(), Arc::clone(&run_ids));
            async move {
                let epoch_ms = turmoil::since_epoch()
                    .map_or(config.epoch_ms, |since| u64::try_from(since.as_millis()).unwrap_or(config.epoch_ms));
                let run_id = next_run_id(&run_ids);
                tracing::info!(target: "esper_sim::redis", %run_id, epoch_ms, "simulated Redis starting");
                let config = ServerConfig { epoch_ms, run_id, ..config };
                RedisServer::recover(config, store, faults).serve(TurmoilConnector, port).await?;
                Ok(())
            }
        });
        self.redis.insert(name.to_owned(), handle.clone());
        handle
    }

    fn register(&mut self, name: &str) {
        let fresh = self.hosts.insert(name.to_owned());
        assert!(fresh, "host {name} registered twice");
    }

    /// Runs to completion: applies faults as their time comes, records the trace,
    /// and turns host errors and panics into a failed [`Outcome`].
    pub fn run(mut self, scenario: &str, mode: TraceMode) -> RunReport {
        let recorder = Arc::new(Mutex::new(TraceRecorder::new(mode)));
        for check in &self.log_checks {
            lock(&recorder).watch(check.target);
        }
        let result = match self.invalid_schedule() {
            Some(error) => Err(error),
            None => {
                let subscriber = TraceSubscriber::new(Arc::clone(&recorder));
                tracing::subscriber::with_default(subscriber, || self.drive(&recorder))
            }
        };
        let finished = std::mem::replace(&mut *lock(&recorder), TraceRecorder::new(mode));
        let summary = finished.finish();
        let checks = std::mem::take(&mut self.log_checks);
        let result = result.and_then(|()| judge_logs(checks, &summary.watched));
        RunReport {
            scenario: scenario.to_owned(),
            seed: self.seed,
            schedule: self.schedule,
            planted: self.planted,
            hosts: self.hosts.iter().cloned().collect(),
            hash: summary.hash,
            events: summary.events,
            sim_elapsed: self.sim.elapsed(),
            outcome: result.map_or_else(|violation| Outcome::Failed { violation }, |()| Outcome::Passed),
            lines: summary.lines,
            tail: summary.tail,
            tally: self.tally.counts(),
            cargo_features: &[],
        }
    }

    /// Why the schedule cannot run in this world: it names a host the world lacks,
    /// or the disk, Redis, clock or device of a host that has none.
    fn invalid_schedule(&self) -> Option<Violation> {
        self.schedule_problem().map(|problem| Invariant::InvalidSchedule.violated(problem))
    }

    fn schedule_problem(&self) -> Option<String> {
        self.schedule.faults().iter().find_map(|scheduled| self.fault_problem(&scheduled.fault))
    }

    /// Why this world cannot apply `fault`, if it cannot: a host it lacks, or a
    /// target the host does not have.
    fn fault_problem(&self, fault: &Fault) -> Option<String> {
        if let Some(host) = fault.hosts().into_iter().find(|host| !self.hosts.contains(*host)) {
            return Some(format!("fault schedule names host {host:?}, which this world does not have"));
        }
        match fault.target() {
            FaultTarget::Host(host)
                if matches!(fault, Fault::Crash { .. } | Fault::Restart { .. }) && self.clients.contains(host) =>
            {
                Some(format!("fault schedule crashes or restarts {host:?}, a client host that cannot restart"))
            }
            FaultTarget::Disk(host) if !self.disks.contains_key(host) => {
                Some(format!("fault schedule names the disk of host {host:?}, which has no disk"))
            }
            FaultTarget::Redis(host) if !self.redis.contains_key(host) => {
                Some(format!("fault schedule names the Redis of host {host:?}, which runs none"))
            }
            FaultTarget::Device(host) if !self.paces.contains_key(host) => {
                Some(format!("fault schedule paces the device of host {host:?}, which trains on none"))
            }
            FaultTarget::Clock(host) if !self.clocks.contains_key(host) => {
                Some(format!("fault schedule jumps the clock of host {host:?}, which reads none"))
            }
            _ => None,
        }
    }

    /// The step loop. Faults due at or before the current sim time are applied
    /// before the step, so a fault at `t` is in force for everything at `t`.
    /// With fast-forward on, the idle ticks after a step are passed in one go,
    /// up to the next fault at most: a fault can make a tick eventful.
    fn drive(&mut self, recorder: &Mutex<TraceRecorder>) -> Result<(), Violation> {
        let faults = self.schedule.faults().to_vec();
        let mut next_fault = 0;
        loop {
            let now = self.sim.elapsed();
            lock(recorder).set_world_time(now);
            while let Some(scheduled) = faults.get(next_fault).filter(|f| u128::from(f.at_ms) <= now.as_millis()) {
                self.apply(&scheduled.fault);
                next_fault += 1;
            }
            match catch_unwind(AssertUnwindSafe(|| self.sim.step())) {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) if self.fast_forward => {
                    let horizon = faults.get(next_fault).map_or(Duration::MAX, |f| Duration::from_millis(f.at_ms));
                    self.sim.fast_forward(horizon);
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => return Err(self.violation_of(error)),
                // turmoil runs hosts with tokio's `ShutdownRuntime` panic policy, so
                // a host's panic unwinds out of `step` to here — also the one the
                // trace subscriber raises to stop a livelocked loop, which tokio
                // re-raises with its own message: the recorder says which it was.
                Err(panic) => {
                    return Err(match lock(recorder).livelock() {
                        Some(livelock) => Invariant::Liveness.violated(livelock),
                        None => Invariant::NoPanic.violated(panic_message(panic.as_ref())),
                    });
                }
            }
        }
    }

    /// What a failed step broke. A host's [`Violation`] comes back as the very
    /// value it returned (turmoil passes a host's boxed error through). Any other
    /// error is turmoil's own when the run has outlived its sim-time budget —
    /// turmoil checks the budget only after every host has stepped cleanly —
    /// and otherwise a host's plain error.
    fn violation_of(&self, error: Box<dyn std::error::Error>) -> Violation {
        match error.downcast::<Violation>() {
            Ok(violation) => *violation,
            Err(error) if self.sim.elapsed() > self.duration => Invariant::Liveness.violated(format!(
                "the run was still going after its sim-time budget of {} s ({error})",
                format_sim_time(self.duration)
            )),
            Err(error) => Invariant::HostError.violated(error.to_string()),
        }
    }

    fn apply(&mut self, fault: &Fault) {
        match fault {
            Fault::Partition { a, b } | Fault::Repair { a, b } => {
                tracing::info!(target: "esper_sim::fault", kind = fault.kind(), a, b, "fault injected");
            }
            _ => tracing::info!(target: "esper_sim::fault", kind = fault.kind(), detail = %fault, "fault injected"),
        }
        match fault.target() {
            FaultTarget::Link(..) | FaultTarget::Route { .. } => self.apply_link_fault(fault),
            FaultTarget::Host(host) => self.apply_host_fault(host, fault),
            FaultTarget::Clock(host) => {
                if let (Some(clock), Fault::ClockJump { by_ms, .. }) = (self.clocks.get(host), fault) {
                    clock.jump(*by_ms);
                }
            }
            FaultTarget::Device(host) => match fault {
                Fault::DeviceSlow { factor_percent, .. } => self.pace_device(host, *factor_percent),
                _ => self.pace_device(host, NOMINAL_PERCENT),
            },
            FaultTarget::Redis(host) => self.apply_redis_fault(host, fault),
            FaultTarget::Disk(host) => self.apply_disk_fault(host, fault),
        }
    }

    /// Cuts, holds, slows or heals a link, then makes turmoil's view match.
    fn apply_link_fault(&mut self, fault: &Fault) {
        match fault {
            Fault::Partition { a, b } => self.update_link(a, b, |world, key| world.cut.insert(key)),
            Fault::Repair { a, b } => self.update_link(a, b, |world, key| world.cut.remove(&key)),
            Fault::Hold { a, b } => self.update_link(a, b, |world, key| world.held.insert(key)),
            Fault::Release { a, b } => self.update_link(a, b, |world, key| world.held.remove(&key)),
            Fault::PartitionOneWay { from, to } => {
                self.cut_one_way.insert((from.clone(), to.clone()));
                self.sync_link(from, to);
            }
            Fault::RepairOneWay { from, to } => {
                self.cut_one_way.remove(&(from.clone(), to.clone()));
                self.sync_link(from, to);
            }
            Fault::PacketLoss { a, b, per_mille } => {
                let rate = f64::from((*per_mille).min(1_000)) / 1_000.0;
                self.sim.set_link_fail_rate(a.as_str(), b.as_str(), rate);
            }
            Fault::Latency { a, b, latency_ms } => {
                self.sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(*latency_ms));
            }
            Fault::LinkHeal { a, b } => {
                self.sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                self.sim.set_link_latency(a.as_str(), b.as_str(), self.latency.0);
                self.sim.set_link_max_message_latency(a.as_str(), b.as_str(), self.latency.1);
            }
            _ => {}
        }
    }

    /// Stalls, resumes, crashes or restarts a host's software.
    fn apply_host_fault(&mut self, host: &str, fault: &Fault) {
        match fault {
            Fault::Stall { .. } => self.update_host(host, |world| world.stalled.insert(host.to_owned())),
            Fault::Resume { .. } => self.update_host(host, |world| world.stalled.remove(host)),
            Fault::Crash { .. } => self.crash(host),
            Fault::Restart { .. } => self.restart(host),
            _ => {}
        }
    }

    /// Changes the schedule's view of one link, then makes turmoil's match it.
    fn update_link(&mut self, a: &str, b: &str, change: impl FnOnce(&mut Self, (String, String)) -> bool) {
        change(self, link(a, b));
        self.sync_link(a, b);
    }

    /// Changes the schedule's view of one host, then re-derives all its links.
    fn update_host(&mut self, host: &str, change: impl FnOnce(&mut Self) -> bool) {
        change(self);
        let others: Vec<String> = self.hosts.iter().filter(|other| *other != host).cloned().collect();
        for other in others {
            self.sync_link(host, &other);
        }
    }

    /// Puts the link between `a` and `b` in the state every fault in force asks
    /// for, strongest first: a host down or the link cut drops messages; a hold
    /// or a stalled end keeps them back; otherwise they flow (and what was held is
    /// delivered). One-way cuts are laid over that. Deriving the state from the
    /// whole picture, rather than toggling it per fault, keeps overlapping faults
    /// (a hold inside a partition, a crash during a stall) from undoing each other.
    fn sync_link(&self, a: &str, b: &str) {
        let key = link(a, b);
        if self.down.contains(a) || self.down.contains(b) || self.cut.contains(&key) {
            self.sim.partition(a, b);
            return;
        }
        if self.held.contains(&key) || self.stalled.contains(a) || self.stalled.contains(b) {
            self.sim.hold(a, b);
        } else {
            self.sim.release(a, b);
        }
        for (from, to) in [(a, b), (b, a)] {
            if self.cut_one_way.contains(&(from.to_owned(), to.to_owned())) {
                self.sim.partition_oneway(from, to);
            }
        }
    }

    /// Power loss: the host is cut off from every other host first, so the
    /// sockets its dying software drops send nothing (a dead machine says no
    /// goodbye, and turmoil would otherwise draw latencies in the order tokio
    /// drops tasks, which depends on process-global task ids), then it stops.
    fn crash(&mut self, host: &str) {
        if self.down.contains(host) {
            return; // Already down (overlapping crash episodes): nothing more to lose.
        }
        self.update_host(host, |world| world.down.insert(host.to_owned()));
        self.sim.crash(host);
        if let Some(disk) = self.disks.get(host) {
            disk.crash();
        }
    }

    /// Reconnects a crashed host to every host as the faults in force allow,
    /// then starts its software again.
    fn restart(&mut self, host: &str) {
        if !self.down.contains(host) {
            // Already running (overlapping crash episodes): restarting it would be
            // an unannounced crash, which the schedule does not say.
            return;
        }
        self.update_host(host, |world| world.down.remove(host));
        self.sim.bounce(host);
    }

    /// Sets the pace of a host's device (checked to exist before the run).
    fn pace_device(&self, host: &str, percent: u32) {
        if let Some(pace) = self.paces.get(host) {
            pace.set_percent(percent);
        }
    }

    /// Switches a fault on (or off) in a host's simulated Redis.
    fn apply_redis_fault(&self, host: &str, fault: &Fault) {
        let Some(handle) = self.redis.get(host) else { return };
        match fault {
            Fault::RedisSlow { delay_ms, .. } => handle.set_reply_delay(Duration::from_millis(*delay_ms)),
            Fault::RedisOom { .. } => handle.reply_oom(),
            Fault::RedisLoading { .. } => handle.reply_loading(),
            Fault::RedisClear { .. } => handle.clear(),
            Fault::RedisReset { .. } => handle.reset_connections(),
            _ => {}
        }
    }

    /// Arms or applies a fault on a host's disk (checked to exist before the run).
    fn apply_disk_fault(&self, host: &str, fault: &Fault) {
        let Some(disk) = self.disks.get(host) else { return };
        match fault {
            Fault::DiskError { op, count, .. } => disk.fail_next(*op, *count),
            Fault::DiskFull { capacity_bytes, .. } => disk.set_capacity(Some(*capacity_bytes)),
            Fault::DiskFreed { .. } => disk.set_capacity(None),
            Fault::DiskSlowReads { extra_ms, .. } => disk.slow_reads(Duration::from_millis(*extra_ms)),
            Fault::DiskBitFlip { path, offset, bit, .. } => {
                let applied = disk.flip_bit(std::path::Path::new(path), *offset, *bit);
                tracing::info!(target: "esper_sim::disk", path, offset, bit, applied, "bit flip");
            }
            Fault::DiskTruncate { path, offset, .. } => {
                let applied = disk.truncate_at(std::path::Path::new(path), *offset);
                tracing::info!(target: "esper_sim::disk", path, offset, applied, "truncation");
            }
            _ => {}
        }
    }
}

/// A link's key: its two ends in name order.
fn link(a: &str, b: &str) -> (String, String) {
    if a <= b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) }
}

/// 40 hex digits from the Redis host's stream.
fn next_run_id(rng: &Mutex<rand_chacha::ChaCha8Rng>) -> String {
    let mut bytes = [0_u8; 20];
    rng.lock().unwrap_or_else(PoisonError::into_inner).fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A poisoned recorder only means a host panicked mid-event; the trace up to
/// there is still the best evidence we have, so keep using it.
fn lock(recorder: &Mutex<TraceRecorder>) -> std::sync::MutexGuard<'_, TraceRecorder> {
    recorder.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The first log check that fails, as its violation; every check sees the lines of
/// its target (none if the run logged none).
fn judge_logs(checks: Vec<LogCheck>, watched: &BTreeMap<String, Vec<String>>) -> Result<(), Violation> {
    for LogCheck { target, invariant, check } in checks {
        let lines = watched.get(target).map_or(&[][..], Vec::as_slice);
        check(lines).map_err(|detail| invariant.violated(detail))?;
    }
    Ok(())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use esper_core::storage::{OpenMode, Storage, StorageFile};

    use super::*;
    use crate::fault::ScheduledFault;

    /// A schedule's slow-reads window reaches the host's disk: a read inside it
    /// takes the extra time, a read after its end does not.
    #[test]
    fn a_slow_reads_window_slows_the_hosts_reads_until_it_ends() {
        let slow_reads = |extra_ms| Fault::DiskSlowReads { host: "tamiyo".into(), extra_ms };
        let window = vec![
            ScheduledFault { at_ms: 10, fault: slow_reads(40) },
            ScheduledFault { at_ms: 100, fault: slow_reads(0) },
        ];
        let mut world = World::new(3, FaultSchedule::new(window));
        let disk = world.disk("tamiyo", SimDiskConfig::default());
        world.client("tamiyo", async move {
            let mut file = disk.open(Path::new("log"), OpenMode::Create).await?;
            file.append(b"x").await?;
            let mut read_ms = Vec::new();
            for wake_ms in [20, 200] {
                tokio::time::sleep(Duration::from_millis(wake_ms)).await;
                let start = tokio::time::Instant::now();
                file.read(0, 1).await?;
                read_ms.push(start.elapsed().as_millis());
            }
            if read_ms == [40, 0] { Ok(()) } else { Err(format!("reads took {read_ms:?} ms, not [40, 0]").into()) }
        });
        let report = world.run("slow-reads", TraceMode::Hash);
        assert!(report.passed(), "{report}");
    }
}
