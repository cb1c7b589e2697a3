//! The pieces every control-loop scenario shares: the Tamiyo host, Tolaria's RPC
//! client and training config.

use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::SigningKey;
use esper_core::net::Connector;
use esper_core::tamiyo::field_reports::{FieldReportConfig, FieldReportStore, WalFieldReportSink};
use esper_core::tamiyo::{
    BlueprintCatalog, RpcConfig, RpcStats, TamiyoClient, TamiyoConfig, TamiyoService, serve_tamiyo,
};
use esper_core::tolaria::TrainingLoopConfig;
use esper_core::wal::inspect;
use esper_sim::{Incarnations, RngTree, SimDisk, SimDiskConfig, TurmoilConnector, World};

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
            let clock = sim_clock();
            let reports = FieldReportConfig::new(FIELD_REPORT_DIR);
            let store = FieldReportStore::open(storage, reports, clock.now_ms()).await?;
            let sink = WalFieldReportSink::new(store, clock);
            let catalog = BlueprintCatalog::karn();
            let mut service = TamiyoService::new(TamiyoConfig::default(), catalog, sink, move || clock.now_ms(), ids);
            Err(serve_tamiyo(listener, &mut service, rpc_config()?, RpcStats::default()).await.into())
        }
    });
    disk
}

/// Field reports durable in Tamiyo's WAL, read without disturbing the live store.
pub async fn durable_field_reports(disk: &SimDisk) -> Result<usize, String> {
    let config = FieldReportConfig::new(FIELD_REPORT_DIR);
    let recovery = inspect(disk, &config.log_path(), &config.wal).await.map_err(|e| e.to_string())?;
    Ok(recovery.len())
}

/// Tolaria's client of the `tamiyo` host; nonces come from `rng` (one life's tree).
pub fn tamiyo_client(clock: UnixClock, rng: &RngTree) -> Result<TamiyoClient<TurmoilConnector>, String> {
    let nonces = rng.stream("rpc_nonces");
    Ok(TamiyoClient::new(TurmoilConnector, TAMIYO, TAMIYO_PORT, rpc_config()?, move || clock.now_ms(), nonces))
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
