//! Oona and the simulated Redis, each measured next to a peer in the same run.
//!
//! (a) Oona's signed publish (HMAC-signed Leyline frame, XADD over the `redis`
//!     crate through the Connector seam, one connection, one message at a time)
//!     against `redis-benchmark` sending the same-sized XADD over one connection
//!     without pipelining, both against one `redis-server` on loopback.
//! (b) The simulated Redis server (over real tokio TCP, one thread, as Redis is)
//!     against `redis-server`, both driven by `redis-benchmark` with the same
//!     commands, clients and request counts.
//!
//! Usage: `cargo bench -p esper-scenarios --bench oona_redis -- [--messages N] [--requests N]`.
//! Needs `redis-server` and `redis-benchmark` (Debian package redis-server; ci/setup installs it).

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use esper_core::clock::UnixClock;
use esper_core::leyline::signing::sign;
use esper_core::leyline::{BusMessageType, MessagePriority, SigningKey, VerifyPolicy};
use esper_core::net::{Connector, TokioConnector};
use esper_core::oona::{ClientParts, OonaClient, PublishOutcome, StreamConfig};
use esper_scenarios::sim::oona_checks::envelope;
use esper_sim::redis::{RedisServer, ServerConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A `redis-server` on a free loopback port, stopped on drop.
struct RealRedis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl RealRedis {
    fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("esper-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        wait_until_listening(port);
        Self { child, dir, port }
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
        let _removed = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe socket");
    probe.local_addr().expect("probe address").port()
}

fn wait_until_listening(port: u16) {
    for _ in 0..1000 {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// The simulated server on its own thread and current-thread runtime.
fn spawn_simulated() -> u16 {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = TokioConnector.bind(0).await.expect("bind");
            sender.send(listener.local_addr().expect("address").port()).expect("report port");
            let _stopped = RedisServer::new(ServerConfig::default()).serve_on(listener).await;
        });
    });
    let port = receiver.recv().expect("simulated server started");
    wait_until_listening(port);
    port
}

/// Requests per second `redis-benchmark` reports for `command` (or `-t tests`).
fn redis_benchmark(port: u16, clients: u32, requests: u64, what: &[&str]) -> Vec<(String, f64)> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", &clients.to_string(), "-n", &requests.to_string()])
        .arg("--csv")
        .args(what)
        .stderr(Stdio::null())
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').map(|cell| cell.trim_matches('"')).collect();
            Some((cells.first()?.to_string(), cells.get(1)?.parse().ok()?))
        })
        .collect()
}

/// Publishes `messages` signed envelopes to the telemetry stream (no depth check:
/// one round trip each, like the peer); returns messages per second.
fn oona_publish_rate(port: u16, messages: u64) -> (f64, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let parts = ClientParts {
            key: SigningKey::new(b"bench-secret".to_vec()).expect("non-empty"),
            verify: VerifyPolicy::default(),
            clock: UnixClock::anchored_at(1_735_689_600_000),
            rng: ChaCha8Rng::seed_from_u64(1),
        };
        let mut client = OonaClient::new(TokioConnector, "127.0.0.1", port, StreamConfig::default(), parts);
        let sample = envelope(0, BusMessageType::Telemetry, MessagePriority::Normal);
        let frame_len =
            sign(&SigningKey::new(b"x".to_vec()).expect("key"), &sample, 0, &mut ChaCha8Rng::seed_from_u64(0)).len();
        let started = Instant::now();
        for seq in 0..messages {
            let outcome = client.publish(&envelope(seq, BusMessageType::Telemetry, MessagePriority::Normal)).await;
            assert!(matches!(outcome, Ok(PublishOutcome::Published { .. })), "{outcome:?}");
        }
        (messages as f64 / started.elapsed().as_secs_f64(), frame_len)
    })
}

fn argument(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|pair| pair[0] == name).and_then(|pair| pair[1].parse().ok()).unwrap_or(default)
}

fn main() {
    if Command::new("redis-benchmark").arg("--version").output().is_err() {
        eprintln!("oona_redis bench: redis-benchmark is not installed (Debian package redis-server)");
        std::process::exit(1);
    }
    let (messages, requests) = (argument("--messages", 20_000), argument("--requests", 200_000));
    let redis = RealRedis::start();

    let (oona, frame_len) = oona_publish_rate(redis.port, messages);
    let payload = "x".repeat(frame_len);
    let xadd = ["XADD", "bench:xadd", "*", "frame", payload.as_str()];
    let peer = redis_benchmark(redis.port, 1, messages, &xadd);
    let peer = peer.first().map_or(f64::NAN, |(_, rps)| *rps);
    println!("(a) one connection, one request at a time, {frame_len}-byte frames, {messages} messages:");
    println!("  oona signed publish      {oona:>12.0} msg/s");
    println!("  redis-benchmark XADD     {peer:>12.0} req/s");
    println!("  ratio oona / redis-benchmark: {:.2}", oona / peer);

    let simulated = spawn_simulated();
    println!("(b) redis-benchmark -c 50 -n {requests}, simulated server vs redis-server, requests/s:");
    let tests: [&[&str]; 2] = [&["-t", "ping,set,get"], &xadd];
    for what in tests {
        let sim = redis_benchmark(simulated, 50, requests, what);
        let real = redis_benchmark(redis.port, 50, requests, what);
        for ((name, sim_rps), (_, real_rps)) in sim.iter().zip(real.iter()) {
            let name: String = name.chars().take(24).collect();
            println!("  {name:<24} sim {sim_rps:>10.0}  redis {real_rps:>10.0}  ratio {:.2}", sim_rps / real_rps);
        }
    }
}
