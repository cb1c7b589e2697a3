//! `esper redis --port P`: the simulated Redis server over real TCP.
//!
//! This is the embedded Redis of the real profile. It is the same code the sim
//! runs as its `redis` host; only the connector (tokio instead of turmoil) and the
//! clock origin (the wall clock, so auto-generated stream ids look like Redis's)
//! differ.

use esper_core::net::TokioConnector;
use esper_sim::redis::{RedisServer, ServerConfig};

/// Serves on `port` (0.0.0.0) until the listener fails or the process is killed.
pub fn serve_blocking(port: u16) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let epoch_ms = wall_clock_ms();
    // A new run_id per process start, as Redis has, so Oona clients notice a restart.
    let run_id = format!("{:024x}{epoch_ms:016x}", std::process::id());
    let config = ServerConfig { epoch_ms, run_id, ..ServerConfig::default() };
    runtime.block_on(RedisServer::new(config).serve(TokioConnector, port))
}

fn wall_clock_ms() -> u64 {
    #[allow(clippy::disallowed_methods, reason = "the real profile's Redis stamps ids with wall time, as Redis does")]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0))
}

/// Starts the embedded Redis on a free loopback port, on a background thread
/// that lives as long as the process; returns the port once it accepts
/// connections. For real-profile runs that bring their own Redis.
pub fn spawn_background() -> std::io::Result<u16> {
    use esper_core::net::Connector as _;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("embedded-redis".to_owned()).spawn(move || {
        let started = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|runtime| {
            runtime.block_on(async move {
                let listener = match TokioConnector.bind(0).await {
                    Ok(listener) => listener,
                    Err(error) => return drop(sender.send(Err(error))),
                };
                let port = listener.local_addr().map(|address| address.port());
                let failed = port.is_err();
                drop(sender.send(port));
                if !failed {
                    let epoch_ms = wall_clock_ms();
                    let run_id = format!("{:024x}{epoch_ms:016x}", std::process::id());
                    let server = RedisServer::new(ServerConfig { epoch_ms, run_id, ..ServerConfig::default() });
                    let _stopped = server.serve_on(listener).await;
                }
            });
        });
        if let Err(error) = started {
            eprintln!("embedded Redis: no tokio runtime: {error}");
        }
    })?;
    receiver.recv().map_err(|_| std::io::Error::other("embedded Redis thread ended before it listened"))?
}
