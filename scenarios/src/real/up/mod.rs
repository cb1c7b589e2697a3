//! `esper up`: the whole control loop, for real, on one machine.
//!
//! Redis (the embedded server, or `--redis-url`), then Nissa's HTTP endpoint on
//! `--nissa-addr` (`:9100` by default) for the whole process, on a thread of its
//! own (`http_thread`), then Weatherlight
//! supervising, in start order: Nissa's ingest, Urza's kernel server, Tamiyo's
//! RPC server (loopback, a free port) and Tolaria's training job, whose Kasmina
//! fetches every germinated seed's kernel from Urza over Oona. All telemetry goes
//! through Weatherlight's hub onto Oona and into Nissa. The services share one
//! current-thread executor; their file I/O runs on tokio's blocking pool
//! (`PooledStorage`), so a slow disk stalls only the task waiting on it, and each
//! Tolaria life trains on a thread of its own (`tolaria_thread`), so a slow
//! (synchronous) device step holds neither Weatherlight's heartbeats nor Tamiyo's
//! RPC. The finished line reports how late the latest heartbeat ran.
//!
//! Progress is printed as lines starting `esper up:` — `ready` (with Nissa's
//! address) once everything is bound, one per epoch, and `finished` (or
//! `stopped`) at the end — so a caller can wait for a line instead of sleeping.
//!
//! It ends by itself once Tolaria has trained `--epochs` epochs, then keeps
//! Nissa's HTTP up for `--linger` (default 0) so the final state can be read.
//! SIGINT or SIGTERM shuts down gracefully: Tolaria finishes its epoch (its
//! checkpoint is written atomically, and every field report in Tamiyo's WAL was
//! fsynced when it was appended; services stop in reverse order, so nothing is
//! appended while Tamiyo stops), then Nissa drains the streams and stops between
//! passes — every entry it read is acked and its consumer group has nothing
//! pending. Urza and Kasmina may leave a kernel request unanswered; it stays in
//! the group's pending list, where the next Urza's XAUTOCLAIM reclaims it.

mod http_thread;
mod nissa_alone;
mod pooled_storage;
mod services;
mod slow_device;
mod tolaria_thread;

pub use nissa_alone::{NissaAloneConfig, run_nissa};
pub use pooled_storage::{PooledFile, PooledStorage};

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::kasmina::KasminaConfig;
use esper_core::net::TokioListener;
use esper_core::nissa::{Nissa, NissaConfig};
use esper_core::oona::StreamConfig;
use esper_core::tolaria::TrainingLoopConfig;
use esper_core::tolaria::device::DeviceKind;
use esper_core::weatherlight::{ServiceSpec, ShutdownReason, SupervisorConfig, Weatherlight, WeatherlightReport};
use esper_sim::RngTree;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::real::real_profile::{RealKey, RedisTarget, process_env, wall_clock_ms};
use services::{Setup, Shared};

/// Nissa's default address: Esper-Lite's port, on loopback only (other machines
/// reach it only when `--nissa-addr` names another interface).
pub const DEFAULT_NISSA_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9_100);

/// What `esper up` was asked to do.
#[derive(Debug, Clone)]
pub struct UpConfig {
    pub redis: RedisTarget,
    /// The Leyline key every service signs and verifies with.
    pub key: RealKey,
    pub device: DeviceKind,
    pub epochs: u32,
    pub nissa_addr: SocketAddr,
    /// Checkpoints and WALs live here; a second run in the same directory resumes.
    pub workdir: PathBuf,
    pub seed: u64,
    /// How long Nissa keeps serving after the last epoch.
    pub linger: Duration,
    /// Slept before every fsync (`--fault-fsync-delay`): a slow disk, injected to
    /// show that it stalls only the task waiting on it.
    pub fsync_delay: Duration,
    /// Slept before every training step (`--fault-step-delay`): a slow libtorch
    /// step, injected to show that it holds only Tolaria's thread.
    pub step_delay: Duration,
}

/// Why `esper up` could not run.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("esper up: {context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("esper up: {0}")]
    Config(String),
    #[error("esper up: Nissa's HTTP server stopped: {0}")]
    Http(std::io::Error),
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> UpError + '_ {
    move |source| UpError::Io { context: context.to_owned(), source }
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct UpOutcome {
    pub report: WeatherlightReport,
    pub epochs_done: u32,
    /// The signal that stopped the run, if one did.
    pub signal: Option<&'static str>,
}

impl UpOutcome {
    /// Whether the run ended as it should: all epochs, or a graceful stop.
    pub fn succeeded(&self) -> bool {
        matches!(self.report.reason, ShutdownReason::JobsDone | ShutdownReason::Requested)
    }
}

/// Runs `esper up` to its end; `announce` prints each progress line.
pub fn run(config: &UpConfig, announce: impl Fn(String) + 'static) -> Result<UpOutcome, UpError> {
    if config.epochs == 0 {
        return Err(UpError::Config("--epochs must be at least 1".to_owned()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io("starting tokio"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, up(config, Box::new(announce)))
}

/// SIGINT and SIGTERM, registered before `ready` is announced.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn register() -> Result<Self, UpError> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(io("registering SIGINT"))?,
            terminate: signal(SignalKind::terminate()).map_err(io("registering SIGTERM"))?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

async fn up(config: &UpConfig, announce: Box<dyn Fn(String)>) -> Result<UpOutcome, UpError> {
    let redis = config.redis.address().map_err(io("starting the embedded Redis"))?;
    let (key, key_source) = (config.key.key.clone(), config.key.source.name());
    let clock = UnixClock::anchored_at(wall_clock_ms());
    let streams = StreamConfig::from_lookup(process_env).map_err(|e| UpError::Config(e.to_string()))?;
    let nissa_config = NissaConfig::from_lookup(process_env).map_err(|e| UpError::Config(e.to_string()))?;
    let nissa = Nissa::new(nissa_config, clock).map_err(|e| UpError::Config(e.to_string()))?;
    check_service_env()?;
    let mut http = http_thread::start(config.nissa_addr, nissa.clone()).map_err(io("binding Nissa's address"))?;
    let nissa_addr = http.addr;
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0);
    let tamiyo_listener = TokioListener::bind_addr(loopback).await.map_err(io("binding Tamiyo's port"))?;
    let tamiyo_addr = tamiyo_listener.local_addr().map_err(io("reading Tamiyo's address"))?;
    let mut signals = Signals::register()?;
    announce(format!(
        "esper up: ready nissa=http://{nissa_addr} redis={}:{} ({}) tamiyo={tamiyo_addr} device={} epochs={} key={key_source} workdir={}",
        redis.0,
        redis.1,
        config.redis.describe(),
        config.device,
        config.epochs,
        config.workdir.display()
    ));
    let rng = RngTree::new(config.seed).child("up");
    let setup = Setup {
        redis,
        key,
        streams: streams.clone(),
        clock,
        rng: rng.clone(),
        tamiyo_addr,
        workdir: config.workdir.clone(),
        storage: PooledStorage { fsync_delay: config.fsync_delay },
        device: config.device,
        step_delay: config.step_delay,
        epochs: config.epochs,
        run_id: format!("up-{}", clock.now_ms()),
    };
    let shared = Rc::new(Shared {
        setup,
        nissa: nissa.clone(),
        tamiyo_listener: RefCell::new(Some(tamiyo_listener)),
        epochs_done: Cell::new(0),
        announce,
        tolaria_thread: RefCell::new(None),
    });
    let mut weatherlight = Weatherlight::new(SupervisorConfig::default(), clock, rng.stream("weatherlight"));
    weatherlight.add(ServiceSpec::daemon("nissa"), services::nissa(&shared));
    weatherlight.add(ServiceSpec::daemon("urza"), services::urza(&shared));
    weatherlight.add(ServiceSpec::daemon("tamiyo"), services::tamiyo(&shared));
    weatherlight.add(ServiceSpec::job("tolaria"), services::tolaria(&shared));
    let supervised = supervise(weatherlight, &shared, &mut signals, config.linger);
    let outcome = tokio::select! {
        served = &mut http.ended => Err(UpError::Http(served.unwrap_or_else(|_| std::io::Error::other("the server ended")))),
        outcome = supervised => Ok(outcome),
    };
    http.stop();
    outcome
}

/// Reads, before anything starts, the environment Kasmina and Tolaria read again
/// in each life: a bad value there would otherwise surface only as a crashing
/// Tolaria that Weatherlight restarts until it gives up, instead of a usage error.
fn check_service_env() -> Result<(), UpError> {
    KasminaConfig::default().with_lookup(process_env).map_err(|e| UpError::Config(e.to_string()))?;
    TrainingLoopConfig::default().with_env(process_env).map_err(|e| UpError::Config(e.to_string()))?;
    Ok(())
}

/// Runs Weatherlight to its end, reports, lingers.
async fn supervise(
    weatherlight: Weatherlight<rand_chacha::ChaCha8Rng>,
    shared: &Rc<Shared>,
    signals: &mut Signals,
    linger: Duration,
) -> UpOutcome {
    let stopped_by = Cell::new(None);
    let shutdown = async {
        let name = signals.next().await;
        stopped_by.set(Some(name));
        (shared.announce)(format!("esper up: {name} received; stopping the services gracefully"));
    };
    let setup = &shared.setup;
    let mut publisher = setup.bus(setup.streams.clone(), "weatherlight", setup.rng.stream("weatherlight-bus"));
    let report = weatherlight.run(&mut publisher, shutdown).await;
    let outcome = UpOutcome { report, epochs_done: shared.epochs_done.get(), signal: stopped_by.get() };
    (shared.announce)(final_line(&outcome, &shared.nissa));
    if outcome.signal.is_none() && !linger.is_zero() {
        (shared.announce)(format!("esper up: lingering {} ms (Nissa still serving)", linger.as_millis()));
        tokio::select! {
            () = tokio::time::sleep(linger) => {}
            name = signals.next() => (shared.announce)(format!("esper up: {name} received while lingering")),
        }
    }
    outcome
}

/// The `finished` / `stopped` line.
fn final_line(outcome: &UpOutcome, nissa: &Nissa) -> String {
    let report = &outcome.report;
    let lives = |name: &str| report.service(name).map_or(0, |service| service.lives);
    let ingested = nissa.summary().ingest.telemetry_packets;
    let head = match (&report.reason, outcome.signal) {
        (ShutdownReason::GaveUp { service }, _) => format!("esper up: failed: Weatherlight gave up on {service}"),
        (_, Some(signal)) => format!("esper up: stopped after {signal}"),
        (_, None) => "esper up: finished".to_owned(),
    };
    let services: Vec<String> =
        report.services.iter().map(|s| format!("{}:{}/{}", s.name, s.lives, s.crashes)).collect();
    format!(
        "{head} epochs={} tamiyo_lives={} services(lives/crashes)={} telemetry_routed={} emergency_telemetry={} nissa_telemetry_ingested={ingested} heartbeats={} heartbeat_late_max_ms={} (tamiyo WAL and tolaria checkpoint synced; nissa drained)",
        outcome.epochs_done,
        lives("tamiyo"),
        services.join(","),
        report.emergency.routed_total,
        report.emergency.telemetry_total,
        report.heartbeats,
        report.heartbeat_late_max.as_millis(),
    )
}
