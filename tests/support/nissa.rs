//! A real-profile Nissa for the integration tests: tokio TCP, a real Redis, the
//! wall clock, on a free loopback port.

use esper_core::clock::UnixClock;
use esper_core::leyline::{SigningKey, VerifyPolicy};
use esper_core::net::TokioConnector;
use esper_core::nissa::{self, Nissa, NissaConfig};
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_scenarios::sim::nissa::alert_checks::AlertRig;
use esper_scenarios::sim::nissa::probe::Probe;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{free_port, wait_until_listening, wall_clock_ms};

/// The bus secret the test Nissa and its publishers share.
const SECRET: &[u8] = b"esper-nissa-tests";

/// An Oona client to Redis on loopback `redis_port`.
pub fn bus(consumer: &str, redis_port: u16, seed: u64) -> OonaClient<TokioConnector, ChaCha8Rng> {
    let parts = ClientParts {
        key: SigningKey::new(SECRET.to_vec()).expect("non-empty secret"),
        verify: VerifyPolicy::default(),
        clock: UnixClock::anchored_at(wall_clock_ms()),
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    let config = StreamConfig { consumer: consumer.to_owned(), ..nissa::bus_config(StreamConfig::default()) };
    OonaClient::new(TokioConnector, "127.0.0.1", redis_port, config, parts)
}

/// Starts Nissa (ingest from Redis on `redis_port`, HTTP on a free port) on a
/// background thread that lives as long as the test process; returns its port.
pub fn spawn(redis_port: u16, config: NissaConfig) -> u16 {
    let port = free_port();
    std::thread::spawn(move || {
        super::runtime::real().block_on(async move {
            let nissa = Nissa::new(NissaConfig { port, ..config }, UnixClock::anchored_at(wall_clock_ms()))
                .expect("the default rules are valid");
            let served = nissa::run(TokioConnector, nissa, bus("nissa", redis_port, 1), ChaCha8Rng::seed_from_u64(2));
            if let Err(error) = served.await {
                eprintln!("test Nissa stopped: {error}");
            }
        });
    });
    wait_until_listening(port);
    port
}

/// A probe of the Nissa on loopback `port`.
pub fn probe(port: u16) -> Probe<TokioConnector> {
    Probe { connector: TokioConnector, host: "127.0.0.1".to_owned(), port }
}

/// A check rig publishing to Redis on `redis_port` and reading Nissa on `port`,
/// once Nissa is ready.
pub async fn rig(redis_port: u16, port: u16) -> AlertRig<TokioConnector, ChaCha8Rng> {
    let probe = probe(port);
    probe.wait_ready(1_000).await.expect("Nissa becomes ready within 10 s");
    AlertRig::new(bus("publisher", redis_port, 3), probe).await.expect("Nissa answers /metrics/summary")
}
