//! The services `esper up` hands to Weatherlight, one life each: Nissa's
//! ingest, Urza's kernel server, Tamiyo's RPC server and Tolaria's training job.
//! Everything a life needs that outlives it (addresses, the Nissa handle, the
//! announcer, the epoch count) is in [`Shared`].

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::thread::JoinHandle;

use esper_core::clock::UnixClock;
use esper_core::karn::Catalog;
use esper_core::kasmina::telemetry as kasmina_telemetry;
use esper_core::kasmina::{KasminaConfig, PrefetchConfig, PrefetchCoordinator, PrefetchingKasmina, SeedManager};
use esper_core::leyline::{SigningKey, VerifyPolicy};
use esper_core::net::http1::HttpLimits;
use esper_core::net::{TokioConnector, TokioListener};
use esper_core::nissa::index::ElasticIndex;
use esper_core::nissa::{self, Nissa, ingest_until};
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_core::tamiyo::{RpcConfig, TamiyoClient};
use esper_core::tezzeret::{CompileJobConfig, DeviceCompiler, Forge, forge_telemetry};
use esper_core::tolaria::device::{Dataset, DeviceKind, ModelSpec};
use esper_core::tolaria::ports::TelemetryPort as _;
use esper_core::tolaria::{Collaborators, StorageCheckpoints, Trainer, TrainingLoopConfig};
use esper_core::urza::{Library, UrzaConfig, serve_kernels};
use esper_core::weatherlight::{ServiceContext, ServiceError, ServiceFuture, TelemetrySender};
use esper_sim::RngTree;
use rand_chacha::ChaCha8Rng;

use super::tolaria_thread::{self, Progress, Relay, Remote};
use super::{PooledStorage, slow_device};
use crate::real::real_profile::process_env;
use crate::sim::control_loop::hosts::serve_tamiyo_with_wal;

/// What every life of every service shares.
pub(super) struct Shared {
    /// Everything a life reads that may cross to Tolaria's thread.
    pub setup: Setup,
    pub nissa: Nissa,
    /// Tamiyo's listener, bound before the start so its port is known; the
    /// first life takes it, later lives bind the same address again.
    pub tamiyo_listener: RefCell<Option<TokioListener>>,
    /// Epochs completed, as the last Tolaria life reported.
    pub epochs_done: Cell<u32>,
    /// Prints one line of progress (stdout in the CLI).
    pub announce: Box<dyn Fn(String)>,
    /// The last Tolaria life's thread (see `tolaria_thread`).
    pub tolaria_thread: RefCell<Option<JoinHandle<()>>>,
}

/// The run's settings and handles that every life reads, all `Send`: a Tolaria
/// life takes a copy to its own thread.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    pub redis: (String, u16),
    pub key: SigningKey,
    pub streams: StreamConfig,
    pub clock: UnixClock,
    pub rng: RngTree,
    pub tamiyo_addr: SocketAddr,
    pub workdir: PathBuf,
    /// The files under `workdir`, every call off the executor (see `PooledStorage`).
    pub storage: PooledStorage,
    pub device: DeviceKind,
    /// `--fault-step-delay`: slept before every training step (see `SlowDevice`).
    pub step_delay: std::time::Duration,
    pub epochs: u32,
    pub run_id: String,
}

impl Setup {
    /// An Oona client on the run's Redis, consumer `consumer`.
    pub(super) fn bus(
        &self,
        config: StreamConfig,
        consumer: &str,
        rng: ChaCha8Rng,
    ) -> OonaClient<TokioConnector, ChaCha8Rng> {
        let parts = ClientParts { key: self.key.clone(), verify: VerifyPolicy::default(), clock: self.clock, rng };
        let config = StreamConfig { consumer: consumer.to_owned(), ..config };
        OonaClient::new(TokioConnector, &self.redis.0, self.redis.1, config, parts)
    }

    /// The random streams of life `life` of `service`.
    fn life(&self, service: &str, life: u32) -> RngTree {
        self.rng.child(service).child(&format!("life-{life}"))
    }
}

/// Nissa's ingest: drains the streams when asked to stop (see `ingest_until`).
pub(super) fn nissa(shared: &Rc<Shared>) -> impl FnMut(ServiceContext) -> ServiceFuture + use<> {
    let shared = Rc::clone(shared);
    move |context: ServiceContext| {
        let shared = Rc::clone(&shared);
        Box::pin(async move {
            let rng = shared.setup.life("nissa", context.life());
            let config = nissa::bus_config(shared.setup.streams.clone());
            let mut bus = shared.setup.bus(config, "nissa", rng.stream("bus"));
            let elastic = shared.nissa.config().elasticsearch.clone();
            let elastic =
                elastic.map(|url| ElasticIndex::new(TokioConnector, &url.host, url.port, HttpLimits::default()));
            let mut index = shared.nissa.index_router(elastic);
            let mut jitter = rng.stream("retry");
            ingest_until(&shared.nissa, &mut bus, &mut index, &mut jitter, || context.stop_requested()).await;
            Ok(())
        })
    }
}

/// Urza's library under `<workdir>/urza`, stocked by Tezzeret: the forge compiles
/// every blueprint of Karn's catalog on the run's device that is not in the
/// library yet (resuming its `forge_wal.json` after a crash), so a restarted
/// Urza serves what an earlier life built without building it again.
async fn stocked_library(shared: &Shared, context: &ServiceContext) -> Result<Library<PooledStorage>, String> {
    let job = CompileJobConfig { artifact_dir: shared.setup.workdir.join("urza"), ..CompileJobConfig::default() };
    let (library, damaged) = Library::open(shared.setup.storage, &job.artifact_dir).await.map_err(|e| e.to_string())?;
    if !damaged.is_empty() {
        tracing::warn!(damaged = damaged.len(), "urza.library.damaged_records");
    }
    let seed = rand::RngCore::next_u64(&mut shared.setup.rng.stream("tezzeret"));
    let compiler = DeviceCompiler::new(shared.setup.device, seed);
    let report = Forge::new(shared.setup.storage, library.clone(), job, compiler)
        .run(&Catalog::default_catalog())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(pending = report.pending.len(), retries = report.retry_count, "tezzeret.forge.done");
    // The pass's telemetry (`tezzeret.compile.retry_count`, which
    // `tezzeret_compile_retry_high` watches) goes to Nissa through the hub.
    let mut hub = context.telemetry();
    for packet in forge_telemetry(&report, shared.setup.clock.now_ms()).map_err(|e| e.to_string())? {
        hub.publish_telemetry(&packet).await.map_err(|e| e.to_string())?;
    }
    Ok(library)
}

/// Urza's kernel server over the Tezzeret-stocked library, until stopped.
pub(super) fn urza(shared: &Rc<Shared>) -> impl FnMut(ServiceContext) -> ServiceFuture + use<> {
    let shared = Rc::clone(shared);
    move |context: ServiceContext| {
        let shared = Rc::clone(&shared);
        Box::pin(async move {
            let rng = shared.setup.life("urza", context.life());
            let requests = shared.setup.bus(shared.setup.streams.clone(), "urza", rng.stream("requests"));
            let replies = shared.setup.bus(shared.setup.streams.clone(), "urza", rng.stream("replies"));
            let library =
                stocked_library(&shared, &context).await.map_err(|e| ServiceError(format!("stocking Urza: {e}")))?;
            let serve = serve_kernels(
                requests,
                replies,
                library,
                UrzaConfig::default(),
                rng.stream("latency"),
                shared.setup.clock,
            );
            tokio::select! {
                () = serve => Err(ServiceError("Urza stopped serving".to_owned())),
                () = context.stopped() => Ok(()),
            }
        })
    }
}

/// Tamiyo's RPC server with its field-report WAL under `<workdir>/tamiyo`.
pub(super) fn tamiyo(shared: &Rc<Shared>) -> impl FnMut(ServiceContext) -> ServiceFuture + use<> {
    let shared = Rc::clone(shared);
    move |context: ServiceContext| {
        let shared = Rc::clone(&shared);
        Box::pin(async move {
            let bound = shared.tamiyo_listener.borrow_mut().take();
            let listener = match bound {
                Some(listener) => listener,
                None => TokioListener::bind_addr(shared.setup.tamiyo_addr).await?,
            };
            let ids = shared.setup.life("tamiyo", context.life()).stream("command_ids");
            let dir = shared.setup.workdir.join("tamiyo");
            let rpc = RpcConfig::new(shared.setup.key.clone());
            let telemetry = context.telemetry();
            let serve =
                serve_tamiyo_with_wal(listener, shared.setup.storage, dir, (shared.setup.clock, ids), rpc, telemetry);
            tokio::select! {
                reason = serve => Err(ServiceError(reason)),
                () = context.stopped() => Ok(()),
            }
        })
    }
}

/// Tolaria's job: resume from `<workdir>/tolaria/checkpoint.wal`, train to
/// `epochs`, ending after the current epoch when asked to stop. The training runs
/// on a thread of its own (`tolaria_thread`); this life relays its progress.
pub(super) fn tolaria(shared: &Rc<Shared>) -> impl FnMut(ServiceContext) -> ServiceFuture + use<> {
    let shared = Rc::clone(shared);
    move |context: ServiceContext| {
        let shared = Rc::clone(&shared);
        Box::pin(async move {
            let previous = shared.tolaria_thread.borrow_mut().take();
            if let Some(thread) = previous {
                tolaria_thread::join(thread).await;
            }
            let (setup, life, telemetry) = (shared.setup.clone(), context.life(), context.telemetry());
            let started = tolaria_thread::start(format!("tolaria-{life}"), move |relay: Relay| async move {
                train(&setup, life, telemetry, &relay).await
            });
            let (thread, remote) = started.map_err(|e| ServiceError(format!("starting Tolaria's thread: {e}")))?;
            *shared.tolaria_thread.borrow_mut() = Some(thread);
            relay_progress(&shared, &context, remote).await.map_err(ServiceError)
        })
    }
}

/// Relays a Tolaria thread's progress until it ends: each epoch beats, is
/// recorded and printed; Weatherlight's stop request is passed on once.
async fn relay_progress(shared: &Shared, context: &ServiceContext, mut remote: Remote) -> Result<(), String> {
    let mut stop_passed_on = false;
    loop {
        tokio::select! {
            progress = remote.next() => match progress {
                Some(Progress::Line(line)) => (shared.announce)(line),
                Some(Progress::Epoch { epoch, line }) => {
                    context.beat();
                    shared.epochs_done.set(epoch);
                    (shared.announce)(line);
                }
                Some(Progress::Ended(ended)) => return ended,
                None => return Err("Tolaria's thread ended without a result (it panicked)".to_owned()),
            },
            () = context.stopped(), if !stop_passed_on => {
                remote.request_stop();
                stop_passed_on = true;
            }
        }
    }
}

/// One Tolaria life, on its own thread: everything here may hold the thread (a
/// libtorch step does) without holding any other service.
async fn train(setup: &Setup, life: u32, telemetry: TelemetrySender, relay: &Relay) -> Result<(), String> {
    let data = setup.rng.child("tolaria");
    let rngs = setup.life("tolaria", life);
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut data.stream("dataset"));
    let model = setup.device.build(spec, &mut data.stream("model")).map_err(|e| e.to_string())?;
    let model = slow_device::with_step_delay(model, setup.step_delay);
    let clock = setup.clock;
    let rpc = RpcConfig::new(setup.key.clone());
    let (host, port) = (setup.tamiyo_addr.ip().to_string(), setup.tamiyo_addr.port());
    let tamiyo = TamiyoClient::new(TokioConnector, host, port, rpc, move || clock.now_ms(), rngs.stream("rpc_nonces"));
    let kasmina = kasmina(setup, life, &rngs).await?;
    let emergency = setup.bus(setup.streams.clone(), "tolaria", rngs.stream("emergency"));
    let peers = Collaborators { tamiyo, kasmina, telemetry: telemetry.clone(), emergency };
    let checkpoints = StorageCheckpoints::new(setup.storage, setup.workdir.join("tolaria").join("checkpoint.wal"));
    let config = TrainingLoopConfig { run_id: setup.run_id.clone(), ..TrainingLoopConfig::default() }
        .with_env(process_env)
        .map_err(|e| e.to_string())?;
    let mut trainer = Trainer::new(config, model, dataset, peers, checkpoints, clock).map_err(|e| e.to_string())?;
    if let Some((epoch, step)) = trainer.resume().await.map_err(|e| e.to_string())? {
        let line = format!("esper up: tolaria resumed from its checkpoint at epoch {epoch} (step {step})");
        relay.report(Progress::Line(line)).await;
    }
    while trainer.epoch() < setup.epochs && !relay.stop_requested() {
        let report = trainer.run_epoch().await.map_err(|e| e.to_string())?;
        let kasmina = &mut trainer.collaborators_mut().kasmina;
        let (attached, prefetch) = (kasmina.kernels_attached(), kasmina.prefetch_counters());
        let mut packets = kasmina.manager_mut().telemetry(clock.now_ms());
        let prefetch_id = format!("kasmina-prefetch-e{}", report.epoch);
        packets.extend(kasmina_telemetry::packets(&prefetch_id, prefetch.metrics(), Vec::new(), clock.now_ms()));
        let seeds = kasmina.manager_mut().active();
        let mut hub = telemetry.clone();
        for packet in packets.drain(..) {
            hub.publish_telemetry(&packet).await.map_err(|e| e.to_string())?;
        }
        let line = format!(
            "esper up: epoch {}/{} loss={:.4} accuracy={:.3} latency_ms={:.1} failure={} seeds_active={seeds} kernels_attached={attached} prefetch_ok={} prefetch_fallback={}",
            report.epoch,
            setup.epochs,
            report.loss,
            report.accuracy,
            report.latency_ms,
            report.failure.map_or("none", |failure| failure.reason()),
            prefetch.ok,
            prefetch.fallback_used,
        );
        relay.report(Progress::Epoch { epoch: report.epoch, line }).await;
        if report.halted {
            return Err(format!("training halted (emergency L4) at epoch {}", report.epoch));
        }
    }
    Ok(())
}

/// Kasmina waiting for kernels from Urza (no built-in kernels), fetching them
/// through a prefetch coordinator whose request ids are unique to this life.
async fn kasmina(
    setup: &Setup,
    life: u32,
    rngs: &RngTree,
) -> Result<PrefetchingKasmina<TokioConnector, ChaCha8Rng>, String> {
    let config = KasminaConfig::default().with_lookup(process_env).map_err(|error| error.to_string())?;
    let manager = SeedManager::new(KasminaConfig { builtin_kernels: false, ..config });
    let config = PrefetchConfig {
        requester: format!("kasmina-{}-{life}", setup.run_id),
        training_run_id: setup.run_id.clone(),
        ..PrefetchConfig::default()
    };
    let requests = setup.bus(setup.streams.clone(), "kasmina", rngs.stream("prefetch-requests"));
    let replies = setup.bus(setup.streams.clone(), "kasmina", rngs.stream("prefetch-replies"));
    let coordinator = PrefetchCoordinator::new(requests, replies, config, setup.clock);
    PrefetchingKasmina::prepare(manager, coordinator).await.map_err(|e| format!("kasmina: {e}"))
}
