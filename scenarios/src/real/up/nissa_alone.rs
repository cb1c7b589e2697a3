//! `esper nissa`: Nissa alone, for an operator whose producers run elsewhere.
//!
//! The same Nissa as `esper up`'s — ingest from Oona (consumer group `nissa` on
//! the telemetry, emergency and normal streams), `/metrics`, `/healthz`,
//! `/readyz`, `/metrics/summary` on `--addr` — until SIGINT or SIGTERM, when the
//! ingest finishes its pass (every entry it read is acked) and the command
//! returns. It prints `esper nissa: ready nissa=http://ADDR …` once bound.

use std::cell::Cell;
use std::net::SocketAddr;

use esper_core::clock::UnixClock;
use esper_core::leyline::VerifyPolicy;
use esper_core::net::http1::HttpLimits;
use esper_core::net::{TokioConnector, TokioListener};
use esper_core::nissa::index::ElasticIndex;
use esper_core::nissa::{self, Nissa, NissaConfig, ingest_until, serve_http_on};
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_sim::RngTree;

use super::{Signals, UpError, io};
use crate::real::real_profile::{RealKey, RedisTarget, process_env, wall_clock_ms};

/// What `esper nissa` was asked to do.
#[derive(Debug, Clone)]
pub struct NissaAloneConfig {
    pub redis: RedisTarget,
    /// Where the HTTP endpoints listen (port 0: a free one).
    pub addr: SocketAddr,
    /// Seeds the bus client's nonces and retry jitter.
    pub seed: u64,
    /// The Leyline key the packets are verified with.
    pub key: RealKey,
}

/// Runs Nissa until a signal; returns the signal's name.
pub fn run_nissa(config: &NissaAloneConfig, announce: impl Fn(String)) -> Result<&'static str, UpError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io("starting tokio"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(config, &announce))
}

async fn serve(config: &NissaAloneConfig, announce: &dyn Fn(String)) -> Result<&'static str, UpError> {
    let (host, port) = config.redis.address().map_err(io("starting the embedded Redis"))?;
    let (key, key_source) = (config.key.key.clone(), config.key.source.name());
    let clock = UnixClock::anchored_at(wall_clock_ms());
    let streams = StreamConfig::from_lookup(process_env).map_err(|e| UpError::Config(e.to_string()))?;
    let nissa_config = NissaConfig::from_lookup(process_env).map_err(|e| UpError::Config(e.to_string()))?;
    let nissa = Nissa::new(nissa_config, clock).map_err(|e| UpError::Config(e.to_string()))?;
    let listener = TokioListener::bind_addr(config.addr).await.map_err(io("binding Nissa's address"))?;
    let addr = listener.local_addr().map_err(io("reading Nissa's address"))?;
    let mut signals = Signals::register()?;
    announce(format!("esper nissa: ready nissa=http://{addr} redis={} key={key_source}", config.redis.describe()));
    let rng = RngTree::new(config.seed).child("nissa");
    let parts = ClientParts { key, verify: VerifyPolicy::default(), clock, rng: rng.stream("bus") };
    let bus_config = StreamConfig { consumer: "nissa".to_owned(), ..nissa::bus_config(streams) };
    let mut bus = OonaClient::new(TokioConnector, &host, port, bus_config, parts);
    let elastic = nissa.config().elasticsearch.clone();
    let elastic = elastic.map(|url| ElasticIndex::new(TokioConnector, &url.host, url.port, HttpLimits::default()));
    let mut index = nissa.index_router(elastic);
    let mut jitter = rng.stream("retry");
    let stop = Cell::new(false);
    let ingest = ingest_until(&nissa, &mut bus, &mut index, &mut jitter, || stop.get());
    let http = serve_http_on(listener, addr.port(), nissa.clone());
    tokio::pin!(ingest, http);
    let signal = tokio::select! {
        served = &mut http => {
            return Err(UpError::Http(served.err().unwrap_or_else(|| std::io::Error::other("the server ended"))));
        }
        () = &mut ingest => return Err(UpError::Config("Nissa's ingest stopped unasked".to_owned())),
        name = signals.next() => name,
    };
    stop.set(true);
    ingest.await;
    let ingested = nissa.summary().ingest.telemetry_packets;
    announce(format!("esper nissa: stopped after {signal} nissa_telemetry_ingested={ingested} (drained)"));
    Ok(signal)
}
