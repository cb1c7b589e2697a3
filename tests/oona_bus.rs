//! Oona's integration checks against a real `redis-server` (the real profile) and
//! against the simulated server over real TCP. The same checks run inside the
//! sim as the `oona-bus` scenario (`tests/determinism.rs` runs every scenario).

mod support;

use esper_core::net::TokioConnector;
use esper_scenarios::sim::oona_checks::{BusFixture, Resetter, run_all};
use esper_sim::redis::{RedisServer, ServerConfig};
use support::{RealRedis, spawn_simulated_server};

fn run_checks(fixture: &BusFixture<TokioConnector>) {
    if let Err(error) = support::runtime::real().block_on(run_all(fixture)) {
        panic!("{error}");
    }
}

#[test]
fn every_oona_check_passes_against_real_redis() {
    let Some(redis) = RealRedis::start("oona_bus") else { return };
    let fixture = BusFixture {
        connector: TokioConnector,
        host: "127.0.0.1".to_owned(),
        port: redis.port,
        resetter: Resetter::ClientKill,
        seed: 1,
    };
    run_checks(&fixture);
}

#[test]
fn every_oona_check_passes_against_the_simulated_server_over_tcp() {
    let server = RedisServer::new(ServerConfig::default());
    let resetter = Resetter::Handle(server.faults());
    let port = spawn_simulated_server(server);
    let fixture = BusFixture { connector: TokioConnector, host: "127.0.0.1".to_owned(), port, resetter, seed: 1 };
    run_checks(&fixture);
}
