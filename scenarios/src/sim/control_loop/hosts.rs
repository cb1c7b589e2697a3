//! The pieces every control-loop scenario shares: the Tamiyo host, Tolaria's RPC
//! client and training config.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::FieldReport;
use esper_core::leyline::{SigningKey, VerifyPolicy};
use esper_core::net::{Connector, Listener};
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_core::planted::Planted;
use esper_core::storage::Storage;
use esper_core::tamiyo::field_reports::{FieldReportConfig, FieldReportStore, WalFieldReportSink};
use esper_core::tamiyo::{
    BlueprintCatalog, FieldReportSink, FieldReportSinkError, RpcConfig, RpcStats, TamiyoClient, TamiyoConfig,
    TamiyoService, serve_tamiyo,
};
use esper_core::tolaria::TrainingLoopConfig;
use esper_core::tolaria::ports::{Outbox, TelemetryPort};
use esper_core::wal::inspect;
use esper_sim::{
    ClockSkew, Incarnations, Invariant, RngTree, SimDisk, SimDiskConfig, TurmoilConnector, Violation, World,
};
use prost::Message;
use rand_chacha::ChaCha8Rng;

use super::rollback::{REDIS, REDIS_PORT, SIM_BUS_SECRET};

trace_target!("control_loop::hosts");

pub const TAMIYO: &str = "tamiyo";
pub const TOLARIA: &str = "tolaria";
pub const TAMIYO_PORT: u16 = 7_300;
/// The sim's shared Leyline secret (the real profile reads `ESPER_LEYLINE_SECRET`).
const SIM_SECRET: &[u8] = b"esper-sim-leyline-secret";
/// The world's fixed epoch, in Unix milliseconds (see `esper_sim::World`).
pub const SIM_EPOCH_MS: u64 = 1_735_689_600_000;

/// A Unix clock at the current sim time (hosts may start late or restart).
pub fn sim_clock() -> UnixClock {
    let elapsed = turmoil::sim_elapsed().unwrap_or_default();
    UnixClock::anchored_at(SIM_EPOCH_MS + u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// The sim's shared Leyline key.
pub fn signing_key() -> Result<SigningKey, String> {
    SigningKey::new(SIM_SECRET.to_vec()).map_err(|e| e.to_string())
}

pub fn rpc_config() -> Result<RpcConfig, String> {
    signing_key().map(RpcConfig::new)
}

/// Where Tamiyo keeps its field-report WAL on its disk.
pub const FIELD_REPORT_DIR: &str = "var/tamiyo";

/// Tamiyo's field-report WAL in the sim: Esper-Lite's defaults, but recovering
/// a torn tail instead of refusing to start. Esper-Lite's strict default turns a
/// power loss in the middle of an append — a torn last record, which the
/// control-loop drill produces within a few dozen seeds — into a Tamiyo that
/// cannot restart until an operator intervenes; the drill's liveness invariant
/// would (rightly) fail on it. See `docs/drills.md`.
fn field_report_config(planted: Planted) -> FieldReportConfig {
    let mut config = FieldReportConfig::new(FIELD_REPORT_DIR);
    config.wal.strict = false;
    config.wal.planted = planted;
    config
}

/// The `tamiyo` host as a scenario's checks see it: its disk, and the ids of the
/// field reports its WAL acknowledged as durable, over all its lives.
#[derive(Debug, Clone)]
pub struct TamiyoHost {
    pub disk: SimDisk,
    acknowledged: Arc<Mutex<Vec<String>>>,
    /// The run's planted bug, which Tamiyo's WAL config carries.
    planted: Planted,
}

/// Where the `tamiyo` host's per-step telemetry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamiyoTelemetry {
    /// Kept in memory, unread: for scenarios whose world has no Redis and whose
    /// checks do not look at Tamiyo's telemetry.
    Unread,
    /// Onto the world's Redis telemetry stream, as `esper up` sends it.
    Bus,
}

/// Registers the `tamiyo` host: the real service over signed RPC, writing a field
/// report per command to its WAL on the host's simulated disk, its clock skewed
/// by the schedule's clock jumps, its telemetry sent as `telemetry` says.
pub fn tamiyo_host(world: &mut World, telemetry: TamiyoTelemetry) -> TamiyoHost {
    tamiyo_host_with(world, telemetry, TamiyoConfig::default())
}

/// [`tamiyo_host`] with Tamiyo's settings `config` (its policy's blueprints, say).
pub fn tamiyo_host_with(world: &mut World, telemetry: TamiyoTelemetry, config: TamiyoConfig) -> TamiyoHost {
    let lives = Incarnations::new(world.rng().child("tamiyo"));
    let disk = world.disk(TAMIYO, SimDiskConfig::default());
    let skew = world.clock_skew(TAMIYO);
    let planted = world.planted();
    let host = TamiyoHost { disk: disk.clone(), acknowledged: Arc::default(), planted };
    let acknowledged = Arc::clone(&host.acknowledged);
    world.host(TAMIYO, move || {
        let (life, storage, skew) = (lives.next(), disk.clone(), skew.clone());
        let (acknowledged, config) = (Arc::clone(&acknowledged), config.clone());
        async move {
            let listener = TurmoilConnector.bind(TAMIYO_PORT).await?;
            let clock = sim_clock();
            let reports = field_report_config(planted);
            let store = open_with_retries(storage, reports, || skew.adjust(clock.now_ms())).await;
            let sink = AuditedSink { inner: WalFieldReportSink::new(store, clock), acknowledged };
            let catalog = BlueprintCatalog::karn();
            let now = move || skew.adjust(clock.now_ms());
            let mut service = TamiyoService::new(config, catalog, sink, now, life.stream("command_ids"));
            let (rpc, stats) = (rpc_config()?, RpcStats::default());
            let stopped = match telemetry {
                TamiyoTelemetry::Unread => {
                    serve_tamiyo(listener, &mut service, rpc, stats, &mut Outbox::default()).await
                }
                TamiyoTelemetry::Bus => {
                    let mut bus = tamiyo_bus(&life)?;
                    serve_tamiyo(listener, &mut service, rpc, stats, &mut bus).await
                }
            };
            Err(stopped.into())
        }
    });
    host
}

/// Tamiyo's client on the world's Redis, for its telemetry.
fn tamiyo_bus(life: &RngTree) -> Result<OonaClient<TurmoilConnector, ChaCha8Rng>, String> {
    let key = SigningKey::new(SIM_BUS_SECRET.to_vec()).map_err(|e| e.to_string())?;
    let parts = ClientParts { key, verify: VerifyPolicy::default(), clock: sim_clock(), rng: life.stream("telemetry") };
    let config = StreamConfig { consumer: TAMIYO.to_owned(), ..StreamConfig::default() };
    Ok(OonaClient::new(TurmoilConnector, REDIS, REDIS_PORT, config, parts))
}

/// Serves Tamiyo on `listener` — the real service, its field-report WAL under
/// `dir` on `storage`, its telemetry sent to `telemetry` — until the server
/// fails; returns why. One life of a Tamiyo process, in the sim and in `esper up`.
pub async fn serve_tamiyo_with_wal<L: Listener, S: Storage, P: TelemetryPort>(
    listener: L,
    storage: S,
    dir: impl Into<PathBuf>,
    (clock, ids): (UnixClock, ChaCha8Rng),
    rpc: RpcConfig,
    mut telemetry: P,
) -> String {
    let reports = FieldReportConfig::new(dir);
    let store = match FieldReportStore::open(storage, reports, clock.now_ms()).await {
        Ok(store) => store,
        Err(error) => return format!("opening the field-report WAL: {error}"),
    };
    let sink = WalFieldReportSink::new(store, clock);
    let catalog = BlueprintCatalog::karn();
    let mut service = TamiyoService::new(TamiyoConfig::default(), catalog, sink, move || clock.now_ms(), ids);
    let stopped = serve_tamiyo(listener, &mut service, rpc, RpcStats::default(), &mut telemetry).await;
    format!("Tamiyo's server stopped: {stopped}")
}

/// Opens the field-report store, retrying with backoff while the disk fails (an
/// EIO at start-up is as transient as one later): Weatherlight's restart with
/// backoff, which the sim's hosts do not otherwise have, so a failed open does
/// not end the world's run.
async fn open_with_retries(
    storage: SimDisk,
    config: FieldReportConfig,
    now_ms: impl Fn() -> u64,
) -> FieldReportStore<SimDisk> {
    let mut delay = Duration::from_millis(100);
    loop {
        match FieldReportStore::open(storage.clone(), config.clone(), now_ms()).await {
            Ok(store) => return store,
            Err(error) => {
                tracing::warn!(target: TRACE_TARGET, %error, retry_in_ms = delay.as_millis() as u64, "tamiyo.field_reports.open_failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The WAL sink, noting each report it acknowledged, so a check can ask the disk
/// for every one of them after the run — the WAL's promise, tested from outside.
struct AuditedSink<S: esper_core::storage::Storage> {
    inner: WalFieldReportSink<S>,
    acknowledged: Arc<Mutex<Vec<String>>>,
}

impl<S: esper_core::storage::Storage> FieldReportSink for AuditedSink<S> {
    async fn record(&mut self, report: FieldReport) -> Result<(), FieldReportSinkError> {
        let report_id = report.report_id.clone();
        self.inner.record(report).await?;
        self.acknowledged.lock().unwrap_or_else(PoisonError::into_inner).push(report_id);
        Ok(())
    }
}

impl TamiyoHost {
    /// The `wal-acknowledged` invariant: every report the WAL acknowledged is
    /// recovered from the disk (read without disturbing the live store).
    pub async fn check_reports_durable(&self) -> Result<usize, Violation> {
        let config = field_report_config(self.planted);
        let recovery =
            inspect(&self.disk.inspection_copy(), &config.log_path(), &config.wal).await.map_err(|error| {
                Invariant::WalAcknowledged.violated(format!("the field-report WAL is unreadable: {error}"))
            })?;
        let recovered: std::collections::BTreeSet<String> = recovery
            .records()
            .filter_map(|record| FieldReport::decode(record).ok())
            .map(|report| report.report_id)
            .collect();
        let acknowledged = self.acknowledged.lock().unwrap_or_else(PoisonError::into_inner);
        let lost: Vec<&String> = acknowledged.iter().filter(|id| !recovered.contains(*id)).collect();
        if let Some(first) = lost.first() {
            return Err(Invariant::WalAcknowledged.violated(format!(
                "{} of {} acknowledged field reports are not on disk (first: {first}); {} recovered",
                lost.len(),
                acknowledged.len(),
                recovered.len()
            )));
        }
        Ok(recovered.len())
    }
}

/// Tolaria's client of the `tamiyo` host; nonces come from `rng` (one life's
/// tree), and its signatures are stamped by `clock` as `skew` shows it.
pub fn tamiyo_client(
    clock: UnixClock,
    skew: ClockSkew,
    rng: &RngTree,
) -> Result<TamiyoClient<TurmoilConnector>, String> {
    tamiyo_client_at(TAMIYO, clock, skew, rng, Planted::NONE)
}

/// Tolaria's client of the Tamiyo serving on `host`, with `planted` armed.
pub fn tamiyo_client_at(
    host: &str,
    clock: UnixClock,
    skew: ClockSkew,
    rng: &RngTree,
    planted: Planted,
) -> Result<TamiyoClient<TurmoilConnector>, String> {
    let nonces = rng.stream("rpc_nonces");
    let now = move || skew.adjust(clock.now_ms());
    let config = RpcConfig { planted, ..rpc_config()? };
    Ok(TamiyoClient::new(TurmoilConnector, host, TAMIYO_PORT, config, now, nonces))
}

/// The trainer's settings in the sim: a 500 ms step timeout and 5 ms of virtual
/// device time per step (the cost model).
pub fn training_config(run_id: &str) -> TrainingLoopConfig {
    TrainingLoopConfig {
        run_id: run_id.to_owned(),
        step_timeout: Duration::from_millis(500),
        step_cost: Duration::from_millis(5),
        ..TrainingLoopConfig::default()
    }
}
