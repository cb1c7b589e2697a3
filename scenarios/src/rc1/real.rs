//! The real profile: the same drills on a tokio runtime, wall-clock time, a real
//! device, and Oona on a Redis over TCP (the embedded server, or `--redis-url`).

use std::path::Path;

use esper_core::clock::UnixClock;
use esper_core::net::TokioConnector;
use esper_core::storage::RealStorage;
use esper_sim::RngTree;

use super::training::{self, BusAddress, TrainingDrill, TrainingOutcome, TrainingParams};
use crate::real_profile::{RedisTarget, signing_key, wall_clock_ms};

/// Runs `drill` for real. `workdir` holds the run's checkpoints.
pub fn run(
    drill: TrainingDrill,
    params: &TrainingParams,
    seed: u64,
    redis: &RedisTarget,
    workdir: &Path,
) -> Result<TrainingOutcome, String> {
    let (host, port) = redis.address().map_err(|e| format!("starting the embedded Redis: {e}"))?;
    let (key, _) = signing_key()?;
    let bus = BusAddress { connector: TokioConnector, host, port, key };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting tokio: {e}"))?;
    let checkpoint = workdir.join(format!("{drill:?}").to_ascii_lowercase()).join("checkpoint.wal");
    let rng = RngTree::new(seed).child("tolaria");
    runtime.block_on(async {
        let clock = UnixClock::anchored_at(wall_clock_ms());
        training::run(drill, params, &bus, (RealStorage, &checkpoint), clock, &rng).await
    })
}
