//! Shared by the integration tests that need a real `redis-server` or the
//! simulated one on loopback.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use esper_sim::redis::{RedisServer, ServerConfig};

pub mod external;
pub mod field_reports;
pub mod nissa;
pub mod runtime;
pub mod seeds;
pub mod sim;

/// The Leyline secret the tests hand real-profile runs (`ESPER_LEYLINE_SECRET`):
/// the real profile has no built-in key, and this one is long enough (32 bytes).
pub const TEST_SECRET: &str = "esper-integration-tests-secret-0123456789";

/// [`TEST_SECRET`] as a key.
pub fn test_key() -> esper_core::leyline::SigningKey {
    esper_core::leyline::SigningKey::new(TEST_SECRET).expect("a non-empty secret")
}

/// A real `redis-server` on a free loopback port with its own temp dir, stopped
/// (and the dir removed) on drop.
#[derive(Debug)]
pub struct RealRedis {
    child: Child,
    dir: PathBuf,
    /// The port it listens on.
    pub port: u16,
}

impl RealRedis {
    /// Starts one, or returns `None` when `ESPER_SKIP` names `redis` (see
    /// [`external::require`]); a missing `redis-server` fails the test.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[])
    }

    /// Starts one with extra `redis-server` arguments (`--requirepass X`…).
    pub fn start_with(test: &str, extra: &[&str]) -> Option<Self> {
        let binary = external::require(external::Tool::Redis, test)?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("esper-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir for redis-server");
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = Self { child, dir, port };
        wait_until_listening(port);
        Some(server)
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
        let _removed = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a probe socket");
    probe.local_addr().expect("probe address").port()
}

/// Waits (at most 10 s) until something accepts connections on `port`.
pub fn wait_until_listening(port: u16) {
    for _ in 0..1000 {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

/// Serves the simulated server over real tokio TCP on a free loopback port, from
/// a background thread that lives as long as the test process; returns the port.
pub fn spawn_simulated(config: ServerConfig) -> u16 {
    spawn_simulated_server(RedisServer::new(config))
}

/// Serves `server` as [`spawn_simulated`] does.
pub fn spawn_simulated_server(server: RedisServer) -> u16 {
    esper_scenarios::real::embedded_redis::spawn_background(server).expect("simulated server started")
}

/// Connects to 127.0.0.1:`port`, sends `input`, half-closes, and returns every
/// byte the server sends until it closes the connection (at most 5 s).
pub fn send_raw(port: u16, input: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    stream.write_all(input).expect("send");
    stream.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut output = Vec::new();
    stream.read_to_end(&mut output).expect("the server closes the connection within 5 s");
    output
}

/// A blocking RESP client that returns raw reply bytes, for byte-exact comparison.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
    resp3: bool,
    /// The framing a sent HELLO / RESET switches to and the one before, until
    /// its reply is read (an error or `+QUEUED` keeps the one before).
    pending_switch: Option<(bool, bool)>,
}

impl RawClient {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self { stream, buffer: Vec::new(), resp3: false, pending_switch: None }
    }

    /// Sends one command and returns its reply's raw bytes. `HELLO 3` / `HELLO 2`
    /// switch how its own reply and later ones are framed, unless it fails;
    /// `RESET` switches back to RESP2.
    pub fn call(&mut self, args: &[String]) -> Vec<u8> {
        self.send(args);
        let reply = self.reply_within(Duration::from_secs(5));
        reply.unwrap_or_else(|| panic!("no reply to {args:?} within 5 s"))
    }

    /// Sends one command without waiting for its reply (read it with
    /// [`Self::reply_within`]).
    pub fn send(&mut self, args: &[String]) {
        use std::io::Write;
        let name = args.first().map(|name| name.to_ascii_uppercase()).unwrap_or_default();
        let before = self.resp3;
        self.pending_switch = match name.as_str() {
            "HELLO" => args.get(1).map(|version| (version == "3", before)),
            "RESET" => Some((false, before)),
            _ => None,
        };
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        self.stream.write_all(&request).expect("send");
    }

    /// The next reply, if one arrives within `wait`.
    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "a wall-clock deadline for a reply from a real socket"
    )]
    pub fn reply_within(&mut self, wait: Duration) -> Option<Vec<u8>> {
        use std::io::Read;
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Some((switch, _)) = self.pending_switch {
                self.resp3 = switch;
            }
            if let Some(used) = self.complete_reply() {
                let reply: Vec<u8> = self.buffer.drain(..used).collect();
                if let Some((_, before)) = self.pending_switch.take()
                    && (reply.starts_with(b"-") || reply == b"+QUEUED\r\n")
                {
                    self.resp3 = before;
                }
                return Some(reply);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left.max(Duration::from_micros(100)))).expect("read timeout");
            let mut chunk = [0_u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("server closed the connection while a reply was due"),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                }
                Err(error) => panic!("reading a reply: {error}"),
            }
        }
    }

    /// The length of the complete reply at the front of the buffer, if any.
    fn complete_reply(&self) -> Option<usize> {
        if self.resp3 {
            let decoded = redis_protocol::resp3::decode::complete::decode_range(&self.buffer).expect("valid RESP3");
            decoded.map(|(_, used)| used)
        } else {
            redis_protocol::resp2::decode::decode_range(&self.buffer).expect("valid RESP2").map(|(_, used)| used)
        }
    }
}

pub use esper_scenarios::real::real_profile::wall_clock_ms;

/// The `esper` binary under test. From a nextest archive run on another machine the
/// path baked in at compile time does not exist; nextest names the extracted one in
/// `NEXTEST_BIN_EXE_esper`, so that comes first.
pub fn esper_binary() -> PathBuf {
    std::env::var_os("NEXTEST_BIN_EXE_esper").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_esper")), PathBuf::from)
}

/// A file of the checkout, e.g. `baselines/rc1/cpu.json`. Read at run time for the
/// same reason as [`esper_binary`]: cargo and nextest set `CARGO_MANIFEST_DIR` to the
/// checkout the tests run in (remapped for an archive).
pub fn workspace_file(relative: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join(relative)
}

/// Whether CUDA can be used here; if not, prints why `test` skips. A GPU runner sets
/// `ESPER_REQUIRE_CUDA=1` (`ci/gpu-profile run --device cuda`), and there a missing
/// CUDA is a failure, not a skip. Machines without a GPU — `ci/test` on any CI
/// runner — skip, so they never need one.
pub fn cuda_or_skip(test: &str) -> bool {
    let why = match esper_core::tolaria::device::cuda_device_count() {
        Ok(count) if count > 0 => return true,
        Ok(_) => "libtorch sees no CUDA device".to_owned(),
        Err(error) => error.to_string(),
    };
    let message = format!("{test}: CUDA is not available here ({why})");
    assert!(
        std::env::var("ESPER_REQUIRE_CUDA").as_deref() != Ok("1"),
        "{message}, and ESPER_REQUIRE_CUDA=1 requires it"
    );
    eprintln!("SKIPPED {message}; the nextest profile `gpu` runs it on a GPU runner (ci/gpu-profile)");
    false
}

/// GET `path` from `address` (HTTP/1.1, Connection: close): status and body.
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}
