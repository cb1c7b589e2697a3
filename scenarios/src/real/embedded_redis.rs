//! `esper redis --port P [--bind IP]`: the simulated Redis server over real TCP.
//!
//! This is the embedded Redis of the real profile. It is the same code the sim
//! runs as its `redis` host; only the connector (tokio instead of turmoil) and the
//! clock origin (the wall clock, so auto-generated stream ids look like Redis's)
//! differ.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use esper_core::net::{Connector as _, TokioConnector, TokioListener};
use esper_sim::redis::{RedisServer, ServerConfig};

use crate::real::real_profile::wall_clock_ms;

/// Where `esper redis` listens unless told otherwise: loopback, as redis-server's
/// own `bind 127.0.0.1 -::1` default with protected mode.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// redis.conf's connection limits, as `esper redis` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisLimits {
    /// `requirepass`
    pub requirepass: Option<Vec<u8>>,
    /// `maxclients`
    pub max_clients: usize,
    /// `client-query-buffer-limit`, bytes.
    pub query_buffer_bytes: usize,
    /// `timeout`; zero keeps idle clients forever.
    pub idle_timeout: std::time::Duration,
}

impl Default for RedisLimits {
    /// The simulated server's defaults (Redis's own, but 1,024 clients): what
    /// benchmarks and tests that do not test limits run with.
    fn default() -> Self {
        let config = ServerConfig::default();
        Self {
            requirepass: None,
            max_clients: config.max_clients,
            query_buffer_bytes: config.limits.max_query_buffer,
            idle_timeout: config.idle_timeout,
        }
    }
}

/// Binds `address` with redis.conf's `limits`, calls `listening` with the address
/// the system gave (port 0 picks a free one), then serves until the listener fails
/// or the process is killed.
pub fn serve_blocking(
    address: SocketAddr,
    limits: RedisLimits,
    listening: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let base = wall_clock_config();
    let config = ServerConfig {
        requirepass: limits.requirepass,
        max_clients: limits.max_clients,
        idle_timeout: limits.idle_timeout,
        limits: esper_sim::redis::Limits { max_query_buffer: limits.query_buffer_bytes, ..base.limits },
        ..base
    };
    runtime.block_on(async {
        let listener = TokioListener::bind_addr(address).await?;
        listening(listener.local_addr()?);
        RedisServer::new(config).serve_on(listener).await
    })
}

/// Serves `server` on a free port from a background thread that lives as long as
/// the process; returns the port, already listening.
pub fn spawn_background(server: RedisServer) -> std::io::Result<u16> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let serve = async move {
            let listener = TokioConnector.bind(0).await?;
            let _ = sender.send(listener.local_addr()?.port());
            server.serve_on(listener).await
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Err(error) = runtime.and_then(|runtime| runtime.block_on(serve)) {
            eprintln!("embedded Redis stopped: {error}");
        }
    });
    receiver.recv().map_err(|_| std::io::Error::other("the embedded Redis did not start listening (see stderr)"))
}

/// The embedded server for one real-profile run, on a free loopback port: its
/// clock on the wall, and a fresh run_id as a new Redis process would have.
pub fn start_embedded() -> std::io::Result<u16> {
    spawn_background(RedisServer::new(wall_clock_config()))
}

fn wall_clock_config() -> ServerConfig {
    let epoch_ms = wall_clock_ms();
    // A new run_id per start, as Redis has, so Oona clients notice a restart.
    let run_id = format!("{:024x}{epoch_ms:016x}", std::process::id());
    ServerConfig { epoch_ms, run_id, ..ServerConfig::default() }
}
