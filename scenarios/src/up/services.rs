//! The services `esper up` hands to Weatherlight, one life each: Nissa's
//! ingest, Urza's kernel server, Tamiyo's RPC server and Tolaria's training job.
//! Everything a life needs that outlives it (addresses, the Nissa handle, the
//! announcer, the epoch count) is in [`Shared`].

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

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
use esper_core::weatherlight::{ServiceContext, ServiceError, ServiceFuture};
use esper_sim::RngTree;
use rand_chacha::ChaCha8Rng;

use super::PooledStorage;
use crate::control_loop::hosts::serve_tamiyo_with_wal;
use crate::real_profile::process_env;

/// What every life of every service shares.
pub(super) struct Shared {
    pub redis: (String, u16),
    pub key: SigningKey,
    pub streams: StreamConfig,
    pub clock: UnixClock,
    pub rng: RngTree,
    pub nissa: Nissa,
    pub tamiyo_addr: SocketAddr,
    /// Tamiyo's listener, bound before the start so its port is known; the
    /// first life takes it, later lives bind the same address again.
    pub tamiyo_listener: RefCell<Option<TokioListener>>,
    pub workdir: PathBuf,
    /// The files under `workdir`, every call off the executor (see `PooledStorage`).
    pub storage: PooledStorage,
    pub device: DeviceKind,
    pub epochs: u32,
    pub run_id: String,
    /// Epochs completed, as the last Tolaria life reported.
    pub epochs_done: Cell<u32>,
    /// Prints one line of progress (stdout in the CLI).
    pub announce: Box<dyn Fn(String)>,
}

impl Shared {
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
            let rng = shared.life("nissa", context.life());
            let config = nissa::bus_config(shared.streams.clone());
            let mut bus = shared.bus(config, "nissa", rng.stream("bus"));
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
    let job = CompileJobConfig { artifact_dir: shared.workdir.join("urza"), ..CompileJobConfig::default() };
    let (library, damaged) = Library::open(shared.storage, &job.artifact_dir).await.map_err(|e| e.to_string())?;
    if !damaged.is_empty() {
        tracing::warn!(damaged = damaged.len(), "urza.library.damaged_records");
    }
    let seed = rand::RngCore::next_u64(&mut shared.rng.stream("tezzeret"));
    let compiler = DeviceCompiler::new(shared.device, seed);
    let report = Forge::new(shared.storage, library.clone(), job, compiler)
        .run(&Catalog::default_catalog())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(pending = report.pending.len(), retries = report.retry_count, "tezzeret.forge.done");
    // The pass's telemetry (`tezzeret.compile.retry_count`, which
    // `tezzeret_compile_retry_high` watches) goes to Nissa through the hub.
    let mut hub = context.telemetry();
    for packet in forge_telemetry(&report, shared.clock.now_ms()).map_err(|e| e.to_string())? {
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
            let rng = shared.life("urza", context.life());
            let requests = shared.bus(shared.streams.clone(), "urza", rng.stream("requests"));
            let replies = shared.bus(shared.streams.clone(), "urza", rng.stream("replies"));
            let library =
                stocked_library(&shared, &context).await.map_err(|e| ServiceError(format!("stocking Urza: {e}")))?;
            let serve =
                serve_kernels(requests, replies, library, UrzaConfig::default(), rng.stream("latency"), shared.clock);
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
                None => TokioListener::bind_addr(shared.tamiyo_addr).await?,
            };
            let ids = shared.life("tamiyo", context.life()).stream("command_ids");
            let dir = shared.workdir.join("tamiyo");
            let rpc = RpcConfig::new(shared.key.clone());
            let telemetry = context.telemetry();
            let serve = serve_tamiyo_with_wal(listener, shared.storage, dir, (shared.clock, ids), rpc, telemetry);
            tokio::select! {
                reason = serve => Err(ServiceError(reason)),
                () = context.stopped() => Ok(()),
            }
        })
    }
}

/// Tolaria's job: resume from `<workdir>/tolaria/checkpoint.wal`, train to
/// `epochs`, ending after the current epoch when asked to stop.
pub(super) fn tolaria(shared: &Rc<Shared>) -> impl FnMut(ServiceContext) -> ServiceFuture + use<> {
    let shared = Rc::clone(shared);
    move |context: ServiceContext| {
        let shared = Rc::clone(&shared);
        Box::pin(async move { train(&shared, &context).await.map_err(ServiceError) })
    }
}

async fn train(shared: &Shared, context: &ServiceContext) -> Result<(), String> {
    let data = shared.rng.child("tolaria");
    let life = shared.life("tolaria", context.life());
    let spec = ModelSpec::rc1();
    let dataset = Dataset::generate(64, spec.features, spec.classes, &mut data.stream("dataset"));
    let model = shared.device.build(spec, &mut data.stream("model")).map_err(|e| e.to_string())?;
    let clock = shared.clock;
    let rpc = RpcConfig::new(shared.key.clone());
    let (host, port) = (shared.tamiyo_addr.ip().to_string(), shared.tamiyo_addr.port());
    let tamiyo = TamiyoClient::new(TokioConnector, host, port, rpc, move || clock.now_ms(), life.stream("rpc_nonces"));
    let kasmina = kasmina(shared, context, &life).await?;
    let emergency = shared.bus(shared.streams.clone(), "tolaria", life.stream("emergency"));
    let peers = Collaborators { tamiyo, kasmina, telemetry: context.telemetry(), emergency };
    let checkpoints = StorageCheckpoints::new(shared.storage, shared.workdir.join("tolaria").join("checkpoint.wal"));
    let config = TrainingLoopConfig { run_id: shared.run_id.clone(), ..TrainingLoopConfig::default() }
        .with_env(process_env)
        .map_err(|e| e.to_string())?;
    let mut trainer = Trainer::new(config, model, dataset, peers, checkpoints, clock).map_err(|e| e.to_string())?;
    if let Some((epoch, step)) = trainer.resume().await.map_err(|e| e.to_string())? {
        (shared.announce)(format!("esper up: tolaria resumed from its checkpoint at epoch {epoch} (step {step})"));
    }
    while trainer.epoch() < shared.epochs && !context.stop_requested() {
        let report = trainer.run_epoch().await.map_err(|e| e.to_string())?;
        context.beat();
        shared.epochs_done.set(report.epoch);
        let kasmina = &mut trainer.collaborators_mut().kasmina;
        let (attached, prefetch) = (kasmina.kernels_attached(), kasmina.prefetch_counters());
        let mut packets = kasmina.manager_mut().telemetry(clock.now_ms());
        let prefetch_id = format!("kasmina-prefetch-e{}", report.epoch);
        packets.extend(kasmina_telemetry::packets(&prefetch_id, prefetch.metrics(), Vec::new(), clock.now_ms()));
        let seeds = kasmina.manager_mut().active();
        let mut hub = context.telemetry();
        for packet in packets.drain(..) {
            hub.publish_telemetry(&packet).await.map_err(|e| e.to_string())?;
        }
        (shared.announce)(format!(
            "esper up: epoch {}/{} loss={:.4} accuracy={:.3} latency_ms={:.1} failure={} seeds_active={seeds} kernels_attached={attached} prefetch_ok={} prefetch_fallback={}",
            report.epoch,
            shared.epochs,
            report.loss,
            report.accuracy,
            report.latency_ms,
            report.failure.map_or("none", |failure| failure.reason()),
            prefetch.ok,
            prefetch.fallback_used,
        ));
        if report.halted {
            return Err(format!("training halted (emergency L4) at epoch {}", report.epoch));
        }
    }
    Ok(())
}

/// Kasmina waiting for kernels from Urza (no built-in kernels), fetching them
/// through a prefetch coordinator whose request ids are unique to this life.
async fn kasmina(
    shared: &Shared,
    context: &ServiceContext,
    life: &RngTree,
) -> Result<PrefetchingKasmina<TokioConnector, ChaCha8Rng>, String> {
    let config = KasminaConfig::default().with_lookup(process_env).map_err(|error| error.to_string())?;
    let manager = SeedManager::new(KasminaConfig { builtin_kernels: false, ..config });
    let config = PrefetchConfig {
        requester: format!("kasmina-{}-{}", shared.run_id, context.life()),
        training_run_id: shared.run_id.clone(),
        ..PrefetchConfig::default()
    };
    let requests = shared.bus(shared.streams.clone(), "kasmina", life.stream("prefetch-requests"));
    let replies = shared.bus(shared.streams.clone(), "kasmina", life.stream("prefetch-replies"));
    let coordinator = PrefetchCoordinator::new(requests, replies, config, shared.clock);
    PrefetchingKasmina::prepare(manager, coordinator).await.map_err(|e| format!("kasmina: {e}"))
}
