//! The supervisor: starts every service as a local tokio task, watches them,
//! restarts the ones that crash, routes their telemetry, and shuts them down in
//! order.
//!
//! * **Start**: services start in the order they were added, each life a
//!   `spawn_local` task that reports its end on a channel.
//! * **Crash**: a life that returns `Err` (or a daemon that returns at all) is
//!   restarted after `restart_backoff.delay_above(attempt)` — 1 s doubling to
//!   30 s plus up to 25 % jitter from the injected RNG, as Esper-Lite's
//!   Weatherlight. The attempt counter resets after a life that lasted
//!   `stable_after`; a service that crashes more than `max_restarts` times is
//!   given up on, and the run ends (a limit reached is an outcome, not a loop).
//! * **Heartbeat**: every `heartbeat_interval` Weatherlight looks at each life —
//!   one that ended without reporting (a panic) is a crash; one with a heartbeat
//!   deadline that has not beaten within it is hung, aborted and restarted — and
//!   publishes its own status packet (`weatherlight.*` metrics and the events
//!   since the last one).
//! * **Telemetry**: packets from the services arrive through the hub and are
//!   published as they come (see [`hub`](super::hub) for emergency routing).
//! * **Shutdown** (on request, when every job is done, or on giving up): services
//!   stop in reverse start order — each is asked to stop, given
//!   `shutdown_grace` to end cleanly, then aborted — and after each one the hub
//!   is drained and a status packet goes out (but after the first-started one),
//!   so a service started early (Nissa, the observer) sees what the later ones
//!   said last — everything Weatherlight routed, in `esper up`.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use rand::RngCore;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::hub::{EmergencyCounters, TelemetryInbox, TelemetrySender, telemetry_channel};
use super::service::{Lifetime, Pulse, Service, ServiceContext, ServiceError, ServiceSpec};
use crate::clock::UnixClock;
use crate::kasmina::telemetry::packets_from;
use crate::leyline::{MetricPoint, TelemetryEvent, TelemetryLevel, TelemetryPacket};
use crate::oona::{Backoff, snapshot_packets};
use crate::planted::Planted;
use crate::tolaria::ports::TelemetryPort;

/// `source_subsystem` of Weatherlight's own packets.
const SOURCE: &str = "weatherlight";
/// Event attributes are cut to this many characters to keep packets in budget.
const ATTRIBUTE_CHARS: usize = 48;
/// Events held for the next status packet at most; older ones are dropped first.
const MAX_PENDING_EVENTS: usize = 64;

/// The supervisor's knobs (Esper-Lite's values by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Restart delays: 1 s doubling to 30 s, plus up to 25 %.
    pub restart_backoff: Backoff,
    /// A life at least this long resets the backoff to its first step: 60 s.
    pub stable_after: Duration,
    /// Crashes of one service before Weatherlight gives up on it: 20.
    pub max_restarts: u32,
    /// Gap between heartbeats (liveness checks and status packets): 1 s.
    pub heartbeat_interval: Duration,
    /// How long a service asked to stop may take before it is aborted: 5 s
    /// (Esper-Lite's `ASYNC_WORKER_SHUTDOWN_TIMEOUT_S`).
    pub shutdown_grace: Duration,
    /// Telemetry packets waiting in the hub at most: 256.
    pub hub_capacity: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            restart_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            stable_after: Duration::from_secs(60),
            max_restarts: 20,
            heartbeat_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            hub_capacity: 256,
        }
    }
}

/// Where a service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    Running,
    /// Crashed; waiting out its backoff.
    Restarting,
    /// A job that completed.
    Done,
    /// Stopped by the shutdown.
    Stopped,
    /// Crashed more than `max_restarts` times.
    GaveUp,
}

/// Why [`Weatherlight::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownReason {
    /// Every job completed.
    JobsDone,
    /// The shutdown future resolved (Ctrl-C, a test's signal).
    Requested,
    /// A service crashed too often.
    GaveUp { service: String },
}

/// One service at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub state: ServiceState,
    /// Lives started (1 + restarts).
    pub lives: u32,
    /// Lives that crashed (returned `Err`, a daemon that returned, a panic, or hung).
    pub crashes: u32,
    /// Of those, lives aborted for missing their heartbeat deadline.
    pub hung: u32,
    /// The last crash's reason.
    pub last_crash: Option<String>,
}

/// What the run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WeatherlightReport {
    pub reason: ShutdownReason,
    pub services: Vec<ServiceReport>,
    pub emergency: EmergencyCounters,
    /// Heartbeats taken.
    pub heartbeats: u64,
    /// The most a heartbeat ran behind its schedule: how long something held
    /// Weatherlight's thread (a synchronous call inside a future) while one was due.
    pub heartbeat_late_max: Duration,
}

impl WeatherlightReport {
    /// The report of the service called `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceReport> {
        self.services.iter().find(|service| service.name == name)
    }
}

/// A life's end, as its task reports it.
#[derive(Debug)]
struct Exit {
    index: usize,
    life: u32,
    result: Result<(), ServiceError>,
}

struct Worker {
    spec: ServiceSpec,
    service: Box<dyn Service>,
    report: ServiceReport,
    /// The current life's number (lives - 1 once started).
    life: u32,
    stop: watch::Sender<bool>,
    pulse: Pulse,
    task: Option<JoinHandle<()>>,
    started_at: Instant,
    restart_at: Option<Instant>,
    /// Quick crashes in a row, this one included (the backoff step is one less).
    attempt: u32,
}

/// The supervisor. See the module docs.
pub struct Weatherlight<R: RngCore> {
    config: SupervisorConfig,
    clock: UnixClock,
    rng: R,
    workers: Vec<Worker>,
    hub: TelemetrySender,
    inbox: TelemetryInbox,
    exits_sender: mpsc::UnboundedSender<Exit>,
    exits: mpsc::UnboundedReceiver<Exit>,
    emergency: EmergencyCounters,
    events: Vec<TelemetryEvent>,
    heartbeats: u64,
    /// The most a heartbeat ran behind its schedule (see `WeatherlightReport`).
    heartbeat_late_max: Duration,
    /// Status packets sent (their ids' sequence number).
    statuses: u64,
    stopping: bool,
}

impl<R: RngCore> std::fmt::Debug for Weatherlight<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.workers.iter().map(|w| w.spec.name.as_str()).collect();
        f.debug_struct("Weatherlight").field("services", &names).field("emergency", &self.emergency).finish()
    }
}

impl<R: RngCore> Weatherlight<R> {
    /// A supervisor with no services yet. `clock` stamps telemetry; `rng` draws
    /// the restart jitter (seeded in the sim).
    pub fn new(config: SupervisorConfig, clock: UnixClock, rng: R) -> Self {
        assert!(!config.heartbeat_interval.is_zero(), "Weatherlight needs a non-zero heartbeat interval");
        let (hub, inbox) = telemetry_channel(config.hub_capacity);
        let (exits_sender, exits) = mpsc::unbounded_channel();
        Self {
            config,
            clock,
            rng,
            workers: Vec::new(),
            hub,
            inbox,
            exits_sender,
            exits,
            emergency: EmergencyCounters::default(),
            events: Vec::new(),
            heartbeats: 0,
            heartbeat_late_max: Duration::ZERO,
            statuses: 0,
            stopping: false,
        }
    }

    /// Adds a service; services start in the order they are added.
    pub fn add(&mut self, spec: ServiceSpec, service: impl Service + 'static) {
        assert!(self.workers.iter().all(|w| w.spec.name != spec.name), "service {} added twice", spec.name);
        let report = ServiceReport {
            name: spec.name.clone(),
            state: ServiceState::Stopped,
            lives: 0,
            crashes: 0,
            hung: 0,
            last_crash: None,
        };
        self.workers.push(Worker {
            spec,
            service: Box::new(service),
            report,
            life: 0,
            stop: watch::channel(false).0,
            pulse: Pulse::new(),
            task: None,
            started_at: Instant::now(),
            restart_at: None,
            attempt: 0,
        });
    }

    /// The hub, for telemetry from outside the supervised services.
    pub fn telemetry(&self) -> TelemetrySender {
        self.hub.clone()
    }

    /// Runs every service until they are all done, `shutdown` resolves, or one
    /// is given up on; then shuts down (see the module docs). Must run inside a
    /// `LocalSet` (a turmoil host is one). Telemetry goes out through `publisher`.
    pub async fn run<P: TelemetryPort>(
        mut self,
        publisher: &mut P,
        shutdown: impl Future<Output = ()>,
    ) -> WeatherlightReport {
        for index in 0..self.workers.len() {
            self.start(index);
        }
        let mut shutdown = pin!(shutdown);
        let mut next_heartbeat = Instant::now() + self.config.heartbeat_interval;
        let reason = loop {
            if let Some(reason) = self.finished() {
                break reason;
            }
            let wake = self.workers.iter().filter_map(|w| w.restart_at).fold(next_heartbeat, Instant::min);
            tokio::select! {
                () = &mut shutdown => break ShutdownReason::Requested,
                Some(exit) = self.exits.recv() => self.on_exit(exit),
                Some(packet) = self.inbox.0.recv() => self.route(packet, publisher).await,
                () = sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= next_heartbeat {
                        self.heartbeat_late_max = self.heartbeat_late_max.max(now - next_heartbeat);
                        self.heartbeat(publisher).await;
                        next_heartbeat += self.config.heartbeat_interval;
                    }
                    self.restart_due();
                }
            }
        };
        tracing::info!(?reason, "weatherlight.shutting_down");
        self.shutdown(publisher).await;
        WeatherlightReport {
            reason,
            services: self.workers.iter().map(|w| w.report.clone()).collect(),
            emergency: self.emergency,
            heartbeats: self.heartbeats,
            heartbeat_late_max: self.heartbeat_late_max,
        }
    }

    /// Starts the next life of service `index`.
    fn start(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        let (stop, stopped) = watch::channel(false);
        worker.stop = stop;
        worker.pulse = Pulse::new();
        worker.life = worker.report.lives;
        worker.report.lives += 1;
        worker.report.state = ServiceState::Running;
        worker.started_at = Instant::now();
        worker.restart_at = None;
        let context = ServiceContext::new(worker.life, stopped, worker.pulse.clone(), self.hub.clone());
        let life_future = worker.service.start(context);
        let (exits, life) = (self.exits_sender.clone(), worker.life);
        tracing::info!(service = %worker.spec.name, life, "weatherlight.service_started");
        worker.task = Some(tokio::task::spawn_local(async move {
            let result = life_future.await;
            // The receiver lives as long as Weatherlight; after that nobody asks.
            let _ = exits.send(Exit { index, life, result });
        }));
    }

    /// Why the run should end now, if it should.
    fn finished(&self) -> Option<ShutdownReason> {
        if let Some(worker) = self.workers.iter().find(|w| w.report.state == ServiceState::GaveUp) {
            return Some(ShutdownReason::GaveUp { service: worker.spec.name.clone() });
        }
        let mut jobs = self.workers.iter().filter(|w| w.spec.lifetime == Lifetime::Job).peekable();
        let any_job = jobs.peek().is_some();
        (any_job && jobs.all(|w| w.report.state == ServiceState::Done)).then_some(ShutdownReason::JobsDone)
    }

    /// A life reported its end.
    fn on_exit(&mut self, exit: Exit) {
        let worker = &mut self.workers[exit.index];
        if exit.life != worker.life || worker.report.state != ServiceState::Running {
            return;
        }
        worker.task = None;
        let lifetime = worker.spec.lifetime;
        match exit.result {
            Ok(()) if lifetime == Lifetime::Job || self.stopping => {
                worker.report.state =
                    if lifetime == Lifetime::Job { ServiceState::Done } else { ServiceState::Stopped };
                tracing::info!(service = %worker.spec.name, life = exit.life, "weatherlight.service_ended");
            }
            Ok(()) => self.crashed(exit.index, "the daemon returned".to_owned()),
            Err(error) => self.crashed(exit.index, error.0),
        }
    }

    /// Counts a crash and schedules the restart, or gives up; during shutdown a
    /// crash only stops the service.
    fn crashed(&mut self, index: usize, reason: String) {
        let now = Instant::now();
        let worker = &mut self.workers[index];
        worker.task = None;
        worker.report.crashes += 1;
        worker.report.last_crash = Some(reason.clone());
        let name = worker.spec.name.clone();
        if self.stopping {
            worker.report.state = ServiceState::Stopped;
            tracing::warn!(service = %name, %reason, "weatherlight.service_failed_while_stopping");
            return;
        }
        if worker.report.crashes > self.config.max_restarts {
            worker.report.state = ServiceState::GaveUp;
            tracing::error!(service = %name, crashes = worker.report.crashes, %reason, "weatherlight.gave_up");
            self.event("weatherlight.service_given_up", TelemetryLevel::Error, &name, &reason, None);
            return;
        }
        let lived = now.saturating_duration_since(worker.started_at);
        worker.attempt = if lived >= self.config.stable_after { 1 } else { worker.attempt + 1 };
        let delay = self.config.restart_backoff.delay_above(worker.attempt - 1, &mut self.rng);
        worker.restart_at = Some(now + delay);
        worker.report.state = ServiceState::Restarting;
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(service = %name, %reason, restart_in_ms = delay_ms, "weatherlight.service_crashed");
        self.event("weatherlight.service_crashed", TelemetryLevel::Warning, &name, &reason, Some(delay_ms));
    }

    /// Restarts every service whose backoff is over.
    fn restart_due(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.workers.len())
            .filter(|&index| self.workers[index].restart_at.is_some_and(|at| at <= now))
            .collect();
        for index in due {
            self.start(index);
        }
    }

    /// Liveness of every running life, then the status packet.
    async fn heartbeat<P: TelemetryPort>(&mut self, publisher: &mut P) {
        self.heartbeats += 1;
        while let Ok(exit) = self.exits.try_recv() {
            self.on_exit(exit);
        }
        for index in 0..self.workers.len() {
            let worker = &self.workers[index];
            if worker.report.state != ServiceState::Running {
                continue;
            }
            if worker.task.as_ref().is_some_and(JoinHandle::is_finished) {
                self.crashed(index, "the task ended without reporting (panicked)".to_owned());
                continue;
            }
            let silent = worker.pulse.silent_for();
            if worker.spec.heartbeat_timeout.is_some_and(|timeout| silent > timeout) {
                if let Some(task) = self.workers[index].task.take() {
                    task.abort();
                }
                self.workers[index].report.hung += 1;
                self.crashed(index, format!("no heartbeat for {} ms", silent.as_millis()));
            }
        }
        self.publish_status(publisher).await;
    }

    /// Asks every service to stop, last started first (see the module docs).
    async fn shutdown<P: TelemetryPort>(&mut self, publisher: &mut P) {
        self.stopping = true;
        for worker in &mut self.workers {
            if worker.report.state == ServiceState::Restarting {
                worker.report.state = ServiceState::Stopped;
                worker.restart_at = None;
            }
        }
        for index in (0..self.workers.len()).rev() {
            self.stop_one(index, publisher).await;
            while let Ok(packet) = self.inbox.0.try_recv() {
                self.route(packet, publisher).await;
            }
            // After the first-started service there is nobody supervised left to
            // tell; the status before it already carries the final counters.
            if index > 0 {
                self.publish_status(publisher).await;
            }
        }
    }

    /// Asks service `index` to stop and waits for it, at most the grace period.
    async fn stop_one<P: TelemetryPort>(&mut self, index: usize, publisher: &mut P) {
        if self.workers[index].report.state != ServiceState::Running {
            return;
        }
        let _ = self.workers[index].stop.send(true);
        let deadline = Instant::now() + self.config.shutdown_grace;
        while self.workers[index].report.state == ServiceState::Running {
            tokio::select! {
                Some(exit) = self.exits.recv() => self.on_exit(exit),
                Some(packet) = self.inbox.0.recv() => self.route(packet, publisher).await,
                () = sleep_until(deadline) => {
                    let worker = &mut self.workers[index];
                    if let Some(task) = worker.task.take() {
                        task.abort();
                    }
                    worker.report.state = ServiceState::Stopped;
                    tracing::warn!(service = %worker.spec.name, "weatherlight.service_aborted_after_grace");
                }
            }
        }
    }

    /// Counts and publishes one packet.
    async fn route<P: TelemetryPort>(&mut self, packet: TelemetryPacket, publisher: &mut P) {
        self.emergency.note(&packet, self.clock.now_ms());
        match publisher.publish_telemetry(&packet).await {
            Ok(()) => self.emergency.routed_total += 1,
            Err(error) => {
                self.emergency.publish_failures_total += 1;
                tracing::warn!(packet_id = %packet.packet_id, %error, "weatherlight.telemetry_not_published");
            }
        }
    }

    /// Weatherlight's own packet(s): emergency counters, service counts, events.
    async fn publish_status<P: TelemetryPort>(&mut self, publisher: &mut P) {
        let now_ms = self.clock.now_ms();
        let running = self.workers.iter().filter(|w| w.report.state == ServiceState::Running).count();
        let crashes: u32 = self.workers.iter().map(|w| w.report.crashes).sum();
        let hung: u32 = self.workers.iter().map(|w| w.report.hung).sum();
        let mut metrics = self.emergency.metrics(now_ms);
        metrics.extend([
            MetricPoint::new("weatherlight.services.running", running as f64, "count"),
            MetricPoint::new("weatherlight.services.crashes_total", f64::from(crashes), "count"),
            MetricPoint::new("weatherlight.services.hung_total", f64::from(hung), "count"),
        ]);
        let events = std::mem::take(&mut self.events);
        self.statuses += 1;
        let prefix = format!("{SOURCE}-{}", self.statuses);
        for packet in packets_from(SOURCE, &prefix, metrics, events, now_ms) {
            self.route(packet, publisher).await;
        }
        // The publisher's own snapshot (Oona's depth, reroutes, drops) rides along,
        // so `esper up`'s bus is watched as the control loop's is.
        let snapshot = publisher.bus_snapshot().await;
        if !snapshot.is_empty() {
            let id = format!("oona-{prefix}");
            for packet in snapshot_packets(&id, snapshot, now_ms, Planted::NONE) {
                self.route(packet, publisher).await;
            }
        }
    }

    fn event(&mut self, name: &str, level: TelemetryLevel, service: &str, reason: &str, delay_ms: Option<u64>) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.remove(0);
        }
        let mut attributes = vec![("service", service.to_owned()), ("reason", cut(reason))];
        if let Some(delay_ms) = delay_ms {
            attributes.push(("restart_in_ms", delay_ms.to_string()));
        }
        self.events.push(TelemetryEvent::named(name, level, &attributes));
    }
}

/// `text` cut to [`ATTRIBUTE_CHARS`] characters.
fn cut(text: &str) -> String {
    text.chars().take(ATTRIBUTE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tokio::task::LocalSet;
    use tokio::time::sleep;

    use super::*;
    use crate::leyline::TelemetryEvent;
    use crate::tolaria::ports::Outbox;
    use crate::weatherlight::ServiceFuture;

    fn weatherlight() -> Weatherlight<ChaCha8Rng> {
        Weatherlight::new(SupervisorConfig::default(), UnixClock::anchored_at(0), ChaCha8Rng::seed_from_u64(3))
    }

    /// A job that sleeps `secs` seconds, then succeeds.
    fn sleeper(secs: u64) -> impl FnMut(ServiceContext) -> ServiceFuture {
        move |_| {
            Box::pin(async move {
                sleep(Duration::from_secs(secs)).await;
                Ok(())
            })
        }
    }

    /// Runs `weatherlight` on a local set until it returns.
    async fn run(weatherlight: Weatherlight<ChaCha8Rng>, outbox: &mut Outbox) -> WeatherlightReport {
        LocalSet::new().run_until(weatherlight.run(outbox, std::future::pending())).await
    }

    /// A daemon failing in its first two lives is restarted after 1–1.25 s, then
    /// 2–2.5 s; it is stopped cleanly when the job completes.
    #[tokio::test(start_paused = true)]
    async fn restarts_a_crashing_daemon_with_growing_backoff() {
        let starts = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&starts);
        let flaky = move |context: ServiceContext| -> ServiceFuture {
            seen.borrow_mut().push(Instant::now());
            Box::pin(async move {
                if context.life() < 2 {
                    return Err(ServiceError(format!("life {} failed", context.life())));
                }
                context.stopped().await;
                Ok(())
            })
        };
        let mut supervisor = weatherlight();
        supervisor.add(ServiceSpec::daemon("flaky"), flaky);
        supervisor.add(ServiceSpec::job("trainer"), sleeper(10));
        let report = run(supervisor, &mut Outbox::default()).await;
        assert_eq!(report.reason, ShutdownReason::JobsDone);
        let flaky = report.service("flaky").expect("flaky reported");
        assert_eq!((flaky.lives, flaky.crashes, flaky.state), (3, 2, ServiceState::Stopped));
        assert_eq!(report.service("trainer").map(|s| s.state), Some(ServiceState::Done));
        let starts = starts.borrow();
        let gaps: Vec<Duration> = starts.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert!((Duration::from_secs(1)..=Duration::from_millis(1_250)).contains(&gaps[0]), "{gaps:?}");
        assert!((Duration::from_secs(2)..=Duration::from_millis(2_500)).contains(&gaps[1]), "{gaps:?}");
    }

    /// A life that stops beating is aborted at the next heartbeat past its
    /// deadline and restarted; the next life beats and lives on.
    #[tokio::test(start_paused = true)]
    async fn aborts_and_restarts_a_hung_service() {
        let beating = |context: ServiceContext| -> ServiceFuture {
            Box::pin(async move {
                if context.life() == 0 {
                    std::future::pending::<()>().await;
                }
                loop {
                    context.beat();
                    tokio::select! {
                        () = context.stopped() => return Ok(()),
                        () = sleep(Duration::from_millis(500)) => {}
                    }
                }
            })
        };
        let mut supervisor = weatherlight();
        supervisor.add(ServiceSpec::daemon("beating").beating_within(Duration::from_secs(3)), beating);
        supervisor.add(ServiceSpec::job("trainer"), sleeper(20));
        let report = run(supervisor, &mut Outbox::default()).await;
        let beating = report.service("beating").expect("reported");
        assert_eq!((beating.lives, beating.crashes, beating.hung), (2, 1, 1));
        assert!(beating.last_crash.as_deref().is_some_and(|reason| reason.starts_with("no heartbeat")));
    }

    /// A service that holds the thread (a synchronous call, as a libtorch step is)
    /// while a heartbeat is due makes it late, and the report says by how much;
    /// with nothing holding it, heartbeats run on time (real time, as `esper up`).
    #[test]
    fn reports_how_late_a_held_thread_made_a_heartbeat() {
        let late_max = |hold: Duration| {
            let holder = move |_: ServiceContext| -> ServiceFuture {
                Box::pin(async move {
                    sleep(Duration::from_millis(900)).await;
                    std::thread::sleep(hold);
                    sleep(Duration::from_millis(400)).await;
                    Ok(())
                })
            };
            let mut supervisor = weatherlight();
            supervisor.add(ServiceSpec::job("holder"), holder);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let report = runtime.block_on(run(supervisor, &mut Outbox::default()));
            assert_eq!((report.reason, report.heartbeats), (ShutdownReason::JobsDone, 1));
            report.heartbeat_late_max
        };
        let held = late_max(Duration::from_millis(300));
        assert!(held >= Duration::from_millis(150), "a 300 ms hold across the heartbeat made it {held:?} late");
        let free = late_max(Duration::ZERO);
        assert!(free < Duration::from_millis(50), "nothing held the thread, yet the heartbeat was {free:?} late");
    }

    /// CRITICAL packets are counted (Tamiyo's apart) and every packet is published.
    #[tokio::test(start_paused = true)]
    async fn routes_and_counts_critical_telemetry() {
        let noisy = |context: ServiceContext| -> ServiceFuture {
            Box::pin(async move {
                let mut hub = context.telemetry();
                for (source, level) in [
                    ("tamiyo", TelemetryLevel::Critical),
                    ("tolaria", TelemetryLevel::Warning),
                    ("kasmina", TelemetryLevel::Critical),
                    ("tamiyo", TelemetryLevel::Critical),
                ] {
                    let packet = TelemetryPacket {
                        packet_id: format!("{source}-drill"),
                        source_subsystem: source.to_owned(),
                        events: vec![TelemetryEvent::named("drill", level, &[])],
                        ..TelemetryPacket::default()
                    };
                    hub.publish_telemetry(&packet).await.map_err(|e| ServiceError(e.to_string()))?;
                    sleep(Duration::from_millis(300)).await;
                }
                Ok(())
            })
        };
        let mut supervisor = weatherlight();
        supervisor.add(ServiceSpec::job("noisy"), noisy);
        let mut outbox = Outbox::default();
        let report = run(supervisor, &mut outbox).await;
        assert_eq!((report.emergency.telemetry_total, report.emergency.tamiyo_total), (3, 1 + 1));
        assert_eq!(report.emergency.tamiyo_last_ms, Some(900));
        let drills = outbox.telemetry.iter().filter(|p| p.packet_id.ends_with("-drill")).count();
        assert_eq!(drills, 4);
        assert_eq!(report.emergency.routed_total, outbox.telemetry.len() as u64);
        let statuses = outbox.telemetry.iter().filter(|p| p.source_subsystem == SOURCE);
        let last_total = statuses.rev().find_map(|p| p.metric("weatherlight.emergency.telemetry_total"));
        assert_eq!(last_total, Some(3.0));
    }

    /// A stop request reaches every service, last started first; one that ignores
    /// it is aborted after the grace period.
    #[tokio::test(start_paused = true)]
    async fn stops_services_in_reverse_order_on_request() {
        let order = Rc::new(RefCell::new(Vec::new()));
        let polite = |name: &'static str, order: Rc<RefCell<Vec<&'static str>>>| {
            move |context: ServiceContext| -> ServiceFuture {
                let order = Rc::clone(&order);
                Box::pin(async move {
                    context.stopped().await;
                    order.borrow_mut().push(name);
                    Ok(())
                })
            }
        };
        let mut supervisor = weatherlight();
        supervisor.add(ServiceSpec::daemon("first"), polite("first", Rc::clone(&order)));
        supervisor.add(ServiceSpec::daemon("stubborn"), |_| -> ServiceFuture { Box::pin(std::future::pending()) });
        supervisor.add(ServiceSpec::daemon("last"), polite("last", Rc::clone(&order)));
        let started = Instant::now();
        let shutdown = sleep(Duration::from_secs(2));
        let mut outbox = Outbox::default();
        let report = LocalSet::new().run_until(supervisor.run(&mut outbox, shutdown)).await;
        assert_eq!(report.reason, ShutdownReason::Requested);
        assert_eq!(*order.borrow(), ["last", "first"]);
        assert!(report.services.iter().all(|s| s.state == ServiceState::Stopped && s.crashes == 0));
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(7) && took < Duration::from_secs(8), "grace of 5 s: {took:?}");
    }

    /// A service that keeps crashing is given up on after `max_restarts`, and the run ends.
    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_restarts() {
        let config = SupervisorConfig { max_restarts: 2, ..SupervisorConfig::default() };
        let mut supervisor = Weatherlight::new(config, UnixClock::anchored_at(0), ChaCha8Rng::seed_from_u64(1));
        supervisor.add(ServiceSpec::daemon("doomed"), |_| -> ServiceFuture {
            Box::pin(async { Err(ServiceError("always".to_owned())) })
        });
        supervisor.add(ServiceSpec::job("trainer"), sleeper(1_000));
        let report = run(supervisor, &mut Outbox::default()).await;
        assert_eq!(report.reason, ShutdownReason::GaveUp { service: "doomed".to_owned() });
        let doomed = report.service("doomed").expect("reported");
        assert_eq!((doomed.lives, doomed.crashes, doomed.state), (3, 3, ServiceState::GaveUp));
        assert_eq!(report.service("trainer").map(|s| s.state), Some(ServiceState::Stopped));
    }
}
