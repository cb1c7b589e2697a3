//! The simulated Redis's faults, driven by the fault schedule: a crash loses what
//! was written since the last simulated fsync (appendfsync everysec) and the
//! restarted server has a new `run_id`; slow replies; `-OOM` for writes only;
//! `-LOADING` for all but connection commands; connection resets.

use std::time::Duration;

use esper_core::net::Connector;
use esper_sim::redis::ServerConfig;
use esper_sim::{Fault, FaultSchedule, ScheduledFault, TraceMode, TurmoilConnector, World};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};

const PORT: u16 = 6379;

/// One connection that sends a command and returns the raw reply.
struct Probe {
    stream: esper_sim::TracedStream,
    buffer: Vec<u8>,
}

impl Probe {
    async fn connect() -> Result<Self, String> {
        let stream = TurmoilConnector.connect("redis", PORT).await.map_err(|error| error.to_string())?;
        Ok(Self { stream, buffer: Vec::new() })
    }

    /// The reply as text, or `"<closed>"` when the server closed the connection.
    async fn call(&mut self, args: &[&str]) -> Result<String, String> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.stream.write_all(request.as_bytes()).await.map_err(|error| error.to_string())?;
        loop {
            let decoded = redis_protocol::resp2::decode::decode_range(&self.buffer).map_err(|e| format!("{e:?}"))?;
            if let Some((_, used)) = decoded {
                let reply: Vec<u8> = self.buffer.drain(..used).collect();
                return Ok(String::from_utf8_lossy(&reply).into_owned());
            }
            let mut chunk = [0_u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Ok("<closed>".to_owned()),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
            }
        }
    }
}

fn fault(at_ms: u64, fault: Fault) -> ScheduledFault {
    ScheduledFault { at_ms, fault }
}

fn schedule() -> FaultSchedule {
    let host = || "redis".to_owned();
    FaultSchedule::new(vec![
        fault(1_500, Fault::Crash { host: host() }),
        fault(1_600, Fault::Restart { host: host() }),
        fault(2_500, Fault::RedisSlow { host: host(), delay_ms: 300 }),
        fault(3_000, Fault::RedisClear { host: host() }),
        fault(3_500, Fault::RedisOom { host: host() }),
        fault(4_000, Fault::RedisLoading { host: host() }),
        fault(4_500, Fault::RedisClear { host: host() }),
        fault(5_000, Fault::RedisReset { host: host() }),
    ])
}

fn run_id(info: &str) -> String {
    info.lines().find_map(|line| line.strip_prefix("run_id:")).unwrap_or_default().to_owned()
}

/// What the probe saw, one line per observation, in order.
async fn observe() -> Result<Vec<String>, String> {
    let start = Instant::now();
    let at = |ms: u64| sleep_until(start + Duration::from_millis(ms));
    let mut seen = Vec::new();
    at(50).await;
    let mut probe = Probe::connect().await?;
    seen.push(probe.call(&["SET", "a", "1"]).await?);
    let first_run = run_id(&probe.call(&["INFO", "server"]).await?);
    at(1_200).await;
    seen.push(probe.call(&["SET", "b", "2"]).await?);
    at(2_000).await;
    let mut probe = Probe::connect().await?;
    seen.push(probe.call(&["GET", "a"]).await?);
    seen.push(probe.call(&["GET", "b"]).await?);
    let second_run = run_id(&probe.call(&["INFO", "server"]).await?);
    seen.push(format!("new run_id: {}", first_run.len() == 40 && second_run.len() == 40 && first_run != second_run));
    at(2_600).await;
    let asked = Instant::now();
    seen.push(probe.call(&["PING"]).await?);
    seen.push(format!("slow: {}", asked.elapsed() >= Duration::from_millis(300)));
    at(3_600).await;
    seen.push(probe.call(&["SET", "c", "3"]).await?);
    seen.push(probe.call(&["GET", "a"]).await?);
    at(4_100).await;
    seen.push(probe.call(&["GET", "a"]).await?);
    seen.push(probe.call(&["CLIENT", "SETINFO", "LIB-NAME", "probe"]).await?);
    at(5_100).await;
    seen.push(probe.call(&["PING"]).await?);
    Ok(seen)
}

#[test]
fn scheduled_redis_faults_act_as_redis_would() {
    let mut world = World::new(3, schedule());
    world.redis("redis", PORT, ServerConfig::default());
    world.client("probe", async move {
        let seen = observe().await?;
        let wanted = [
            "+OK\r\n",
            "+OK\r\n",
            "$1\r\n1\r\n",
            "$-1\r\n",
            "new run_id: true",
            "+PONG\r\n",
            "slow: true",
            "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
            "$1\r\n1\r\n",
            "-LOADING Redis is loading the dataset in memory\r\n",
            "+OK\r\n",
            "<closed>",
        ];
        if seen != wanted {
            return Err(format!("saw {seen:#?}").into());
        }
        Ok(())
    });
    let report = world.run("redis-faults", TraceMode::Hash);
    assert!(report.passed(), "{report}");
}

#[test]
fn a_redis_fault_on_a_host_without_redis_is_refused_before_the_run() {
    let schedule = FaultSchedule::new(vec![fault(1, Fault::RedisOom { host: "probe".to_owned() })]);
    let mut world = World::new(1, schedule);
    world.client("probe", async { Ok(()) });
    let report = world.run("redis-faults", TraceMode::Hash);
    assert!(!report.passed());
    assert!(report.to_string().contains("runs none"), "{report}");
}
