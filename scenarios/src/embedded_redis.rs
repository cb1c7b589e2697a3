//! `esper redis --port P [--bind IP]`: the simulated Redis server over real TCP.
//!
//! This is the embedded Redis of the real profile. It is the same code the sim
//! runs as its `redis` host; only the connector (tokio instead of turmoil) and the
//! clock origin (the wall clock, so auto-generated stream ids look like Redis's)
//! differ.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use esper_core::net::{Connector as _, TokioConnector, TokioListener};
use esper_sim::redis::{RedisServer, ServerConfig};

use crate::real_profile::wall_clock_ms;

/// Where `esper redis` listens unless told otherwise: loopback, as redis-server's
/// own `bind 127.0.0.1 -::1` default with protected mode.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Binds `address`, calls `listening` with the address the system gave (port 0
/// picks a free one), then serves until the listener fails or the process is killed.
pub fn serve_blocking(address: SocketAddr, listening: impl FnOnce(SocketAddr)) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = TokioListener::bind_addr(address).await?;
        listening(listener.local_addr()?);
        RedisServer::new(wall_clock_config()).serve_on(listener).await
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
