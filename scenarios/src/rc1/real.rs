//! The real profile: the same workloads on a tokio runtime, wall-clock time, a real
//! device, and Oona on a Redis over TCP (the embedded server, or `--redis-url`).

use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::SigningKey;
use esper_core::net::TokioConnector;
use esper_core::storage::RealStorage;
use esper_sim::RngTree;

use super::training::{self, BusAddress, TrainingOutcome, TrainingParams, TrainingWorkload};
use crate::real::real_profile::{RedisTarget, wall_clock_ms};

/// Runs `workload` for real. `workdir` holds the run's checkpoints.
pub fn run(
    workload: TrainingWorkload,
    params: &TrainingParams,
    seed: u64,
    (redis, key): (&RedisTarget, &SigningKey),
    workdir: &Path,
) -> Result<TrainingOutcome, String> {
    let (host, port) = redis.address().map_err(|e| format!("starting the embedded Redis: {e}"))?;
    ensure_reachable(&host, port)?;
    let bus = BusAddress { connector: TokioConnector, host, port, key: key.clone() };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting tokio: {e}"))?;
    let checkpoint = workdir.join(format!("{workload:?}").to_ascii_lowercase()).join("checkpoint.wal");
    let rng = RngTree::new(seed).child("tolaria");
    runtime.block_on(async {
        let clock = UnixClock::anchored_at(wall_clock_ms());
        training::run(workload, params, &bus, (RealStorage, &checkpoint), clock, &rng).await
    })
}

/// How long the real profile waits for its Redis to accept a connection.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Refuses to start a workload whose Redis cannot be reached: a workload does not stop on a
/// failed publish, so without this check a wrong `--redis-url` kept the harness
/// retrying for minutes instead of failing the scenario (exit 1) at once.
fn ensure_reachable(host: &str, port: u16) -> Result<(), String> {
    let unreachable = |why: String| format!("Redis at {host}:{port} is unreachable: {why}");
    let addresses = (host, port).to_socket_addrs().map_err(|error| unreachable(error.to_string()))?;
    let mut last = "the host name resolves to no address".to_owned();
    for address in addresses {
        match TcpStream::connect_timeout(&address, REDIS_CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(error) => last = format!("{address}: {error}"),
        }
    }
    Err(unreachable(last))
}
