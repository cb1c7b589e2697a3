//! The pieces every control-loop scenario shares: the Tamiyo host, Tolaria's RPC
//! client and training config.

use std::path::PathBuf;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::SigningKey;
use esper_core::net::{Connector, Listener};
use esper_core::storage::Storage;
use esper_core::tamiyo::field_reports::{FieldReportConfig, FieldReportStore, WalFieldReportSink};
use esper_core::tamiyo::{
    BlueprintCatalog, RpcConfig, RpcStats, TamiyoClient, TamiyoConfig, TamiyoService, serve_tamiyo,
};
use esper_core::tolaria::TrainingLoopConfig;
use esper_core::wal::inspect;
use esper_sim::{Incarnations, RngTree, SimDisk, SimDiskConfig, TurmoilConnector, World};
use rand_chacha::ChaCha8Rng;

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

/// Registers the `tamiyo` host: the real service over signed RPC, writing a field
/// report per command to its WAL on the host's simulated disk (returned, so a
/// scenario's checks can read what became durable).
pub fn tamiyo_host(world: &mut World) -> SimDisk {
    let lives = Incarnations::new(world.rng().child("tamiyo"));
    let disk = world.disk(TAMIYO, SimDiskConfig::default());
    let storage = disk.clone();
    world.host(TAMIYO, move || {
        let (ids, storage) = (lives.next().stream("command_ids"), storage.clone());
        async move {
            let listener = TurmoilConnector.bind(TAMIYO_PORT).await?;
            Err(serve_tamiyo_with_wal(listener, storage, FIELD_REPORT_DIR, sim_clock(), ids, rpc_config()?)
                .await
                .into())
        }
    });
    disk
}

/// Serves Tamiyo on `listener` — the real service, its field-report WAL under
/// `dir` on `storage` — until the server fails; returns why. One life of a
/// Tamiyo process, in the sim and in `esper up`.
pub async fn serve_tamiyo_with_wal<L: Listener, S: Storage>(
    listener: L,
    storage: S,
    dir: impl Into<PathBuf>,
    clock: UnixClock,
    ids: ChaCha8Rng,
    rpc: RpcConfig,
) -> String {
    let reports = FieldReportConfig::new(dir);
    let store = match FieldReportStore::open(storage, reports, clock.now_ms()).await {
        Ok(store) => store,
        Err(error) => return format!("opening the field-report WAL: {error}"),
    };
    let sink = WalFieldReportSink::new(store, clock);
    let catalog = BlueprintCatalog::karn_sample();
    let mut service = TamiyoService::new(TamiyoConfig::default(), catalog, sink, move || clock.now_ms(), ids);
    format!("Tamiyo's server stopped: {}", serve_tamiyo(listener, &mut service, rpc, RpcStats::default()).await)
}

/// Field reports durable in Tamiyo's WAL, read without disturbing the live store.
pub async fn durable_field_reports(disk: &SimDisk) -> Result<usize, String> {
    let config = FieldReportConfig::new(FIELD_REPORT_DIR);
    let recovery = inspect(disk, &config.log_path(), &config.wal).await.map_err(|e| e.to_string())?;
    Ok(recovery.len())
}

/// Tolaria's client of the `tamiyo` host; nonces come from `rng` (one life's tree).
pub fn tamiyo_client(clock: UnixClock, rng: &RngTree) -> Result<TamiyoClient<TurmoilConnector>, String> {
    tamiyo_client_at(TAMIYO, clock, rng)
}

/// Tolaria's client of the Tamiyo serving on `host`.
pub fn tamiyo_client_at(host: &str, clock: UnixClock, rng: &RngTree) -> Result<TamiyoClient<TurmoilConnector>, String> {
    let nonces = rng.stream("rpc_nonces");
    Ok(TamiyoClient::new(TurmoilConnector, host, TAMIYO_PORT, rpc_config()?, move || clock.now_ms(), nonces))
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
