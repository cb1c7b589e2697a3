//! The burst for real: the same coordinator and the same Urza on one tokio
//! runtime, over real TCP to the embedded Redis (the simulated server on a
//! loopback port) or a `redis://` URL, timed by the wall clock.
//!
//! Urza's latency draws are seeded from `BurstConfig::seed`, so the modelled
//! latencies repeat; the measured ones carry real scheduling and network noise.
//! Kernel streams get a per-run suffix, so runs sharing a Redis never read each
//! other's answers.

use esper_core::clock::UnixClock;
use esper_core::kasmina::PrefetchCoordinator;
use esper_core::leyline::{SigningKey, VerifyPolicy};
use esper_core::net::TokioConnector;
use esper_core::oona::{ClientParts, OonaClient};
use esper_core::urza::serve_kernels;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{BurstConfig, BurstError, BurstReport, bench_library, burst, stream_config};
use crate::real::real_profile::{RedisTarget, wall_clock_ms};

/// Runs the burst once against `redis`, on the wall clock, signing with `key`.
pub fn run_real(config: &BurstConfig, redis: &RedisTarget, key: &SigningKey) -> Result<BurstReport, BurstError> {
    config.validate()?;
    let (host, port) = redis.address().map_err(BurstError::EmbeddedRedis)?;
    let key = key.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(BurstError::Runtime)?;
    let unix_ms = wall_clock_ms();
    let suffix = format!(".bench-{unix_ms}-{}", std::process::id());
    runtime.block_on(async move {
        let clock = UnixClock::anchored_at(unix_ms);
        let streams = ChaCha8Rng::seed_from_u64(config.seed);
        let client = |who: &str, stream: u64| {
            let mut rng = streams.clone();
            rng.set_stream(stream);
            let parts = ClientParts { key: key.clone(), verify: VerifyPolicy::default(), clock, rng };
            OonaClient::new(TokioConnector, &host, port, stream_config(who, &suffix), parts)
        };
        let mut latency = streams.clone();
        latency.set_stream(4);
        let mut disk = streams.clone();
        disk.set_stream(5);
        let library = bench_library(config, disk).await?;
        let urza = serve_kernels(client("urza", 0), client("urza", 1), library, config.urza(), latency, clock);
        let coordinator =
            PrefetchCoordinator::new(client("kasmina", 2), client("kasmina", 3), config.prefetch("kasmina"), clock);
        tokio::select! {
            () = urza => Err(BurstError::Sim("Urza stopped serving".to_owned())),
            report = burst(coordinator, *config, "real") => report,
        }
    })
}
