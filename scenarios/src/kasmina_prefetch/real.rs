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

use super::{BurstConfig, BurstError, BurstReport, burst, stream_config};
use crate::embedded_redis;

/// Which Redis the real burst talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// Start the embedded Redis on a free loopback port.
    Embedded,
    /// `redis://host:port[/db]` (the database number is ignored: streams live in db 0).
    Url(String),
}

/// Secret used when `ESPER_LEYLINE_SECRET` is unset: both ends of the bench
/// live in this process, so any shared key will do.
const BENCH_SECRET: &[u8] = b"esper-kasmina-prefetch-bench";

/// Runs the burst once against `redis`, on the wall clock.
pub fn run_real(config: &BurstConfig, redis: &RedisTarget) -> Result<BurstReport, BurstError> {
    config.validate()?;
    let (host, port) = match redis {
        RedisTarget::Embedded => {
            ("127.0.0.1".to_owned(), embedded_redis::spawn_background().map_err(BurstError::EmbeddedRedis)?)
        }
        RedisTarget::Url(url) => parse_url(url)?,
    };
    let key = match SigningKey::from_env() {
        Ok(key) => key,
        Err(_) => SigningKey::new(BENCH_SECRET.to_vec()).map_err(|e| BurstError::Config(e.to_string()))?,
    };
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
        let urza = serve_kernels(client("urza", 0), client("urza", 1), config.urza(), latency, clock);
        let coordinator =
            PrefetchCoordinator::new(client("kasmina", 2), client("kasmina", 3), config.prefetch("kasmina"), clock);
        tokio::select! {
            () = urza => Err(BurstError::Sim("Urza stopped serving".to_owned())),
            report = burst(coordinator, *config, "real") => report,
        }
    })
}

/// `redis://host:port[/db]` → (host, port); the port defaults to 6379.
fn parse_url(url: &str) -> Result<(String, u16), BurstError> {
    let bad = || BurstError::RedisUrl(url.to_owned());
    let rest = url.strip_prefix("redis://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
        None => (authority, 6379),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn wall_clock_ms() -> u64 {
    #[allow(clippy::disallowed_methods, reason = "the real profile stamps requests with wall time")]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_parse_or_are_refused_by_name() {
        assert_eq!(parse_url("redis://127.0.0.1:6390/0").ok(), Some(("127.0.0.1".to_owned(), 6390)));
        assert_eq!(parse_url("redis://cache").ok(), Some(("cache".to_owned(), 6379)));
        for bad in ["http://x:1", "redis://:1", "redis://x:port"] {
            assert!(matches!(parse_url(bad), Err(BurstError::RedisUrl(url)) if url == bad), "{bad}");
        }
    }
}
