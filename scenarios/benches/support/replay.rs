//! Bare turmoil carrying a recorded run's traffic: the benchmarks' peer for any
//! scenario.
//!
//! The sim's connector traces every socket write as a `send` line (host, stream
//! `from:port>to:port`, byte count; `esper_sim::net`). [`Traffic::of`] reads those
//! lines from an esper run's full trace, and [`Traffic::replay`] runs stock
//! turmoil — stepping every tick, neither `fast_forward` nor `skip_idle_hosts` —
//! with the same hosts, the same physics and the same connections, each side
//! writing the same number of bytes at the same sim times and reading whatever
//! arrives, for as long as the esper run lasted. No Esper code runs in it: no
//! signing, WAL, disk, Redis, trace or training, only the hosts and the bytes.
//! Faults are not replayed (a crashed host's later writes still go out), so the
//! peer does at least the network work of the run.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use esper_sim::{RunReport, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

/// turmoil's first ephemeral port: a stream end at or above it is the side that
/// connected, the other end the listener.
const EPHEMERAL: u16 = 49_152;

/// One connection of the recorded run and the writes of each side.
#[derive(Clone, Debug)]
struct Connection {
    client: String,
    server: String,
    port: u16,
    /// Sim time of the first write on it, either way.
    opened: Duration,
    /// `(at, bytes)` written by the side that connected.
    client_writes: Vec<(Duration, usize)>,
    /// `(at, bytes)` written by the listening side.
    server_writes: Vec<(Duration, usize)>,
}

/// What a recorded run sent, by connection, and how long it ran.
#[derive(Clone, Debug)]
pub struct Traffic {
    hosts: Vec<String>,
    connections: Vec<Connection>,
    duration: Duration,
}

impl Traffic {
    /// The traffic of `report`, which must hold every trace line (`TraceMode::Full`).
    pub fn of(report: &RunReport) -> Self {
        let mut connections: BTreeMap<(String, u16, String, u16), Connection> = BTreeMap::new();
        for line in &report.lines {
            let Some(send) = SentBytes::parse(line) else { continue };
            let client_side = send.from.1 >= EPHEMERAL;
            let (client, server) = if client_side { (&send.from, &send.to) } else { (&send.to, &send.from) };
            let key = (client.0.clone(), client.1, server.0.clone(), server.1);
            let connection = connections.entry(key).or_insert_with(|| Connection {
                client: client.0.clone(),
                server: server.0.clone(),
                port: server.1,
                opened: send.at,
                client_writes: Vec::new(),
                server_writes: Vec::new(),
            });
            let writes = if client_side { &mut connection.client_writes } else { &mut connection.server_writes };
            writes.push((send.at, send.bytes));
        }
        let mut connections: Vec<Connection> = connections.into_values().collect();
        connections.sort_by_key(|connection| connection.opened);
        Self { hosts: report.hosts.clone(), connections, duration: report.sim_elapsed }
    }

    /// Bytes the recorded run wrote, both ways.
    pub fn bytes(&self) -> usize {
        let writes = self.connections.iter().flat_map(|c| c.client_writes.iter().chain(&c.server_writes));
        writes.map(|(_, bytes)| bytes).sum()
    }

    /// Runs the traffic in stock turmoil with `physics`: the sim time it ran, and
    /// the bytes read at the far ends (the benches check them against [`Traffic::bytes`]).
    pub fn replay(&self, seed: u64, physics: &WorldConfig) -> Replayed {
        let delivered = Arc::new(AtomicUsize::new(0));
        let mut builder = turmoil::Builder::new();
        builder
            .rng_seed(seed)
            .epoch(std::time::UNIX_EPOCH)
            .tick_duration(physics.tick)
            .simulation_duration(self.duration + Duration::from_secs(1))
            .min_message_latency(physics.min_latency)
            .max_message_latency(physics.max_latency);
        if physics.random_host_order {
            builder.enable_random_order();
        }
        let mut sim = builder.build();
        // Every host runs forever but one, the client turmoil waits for, which
        // ends when the recorded run ended.
        for (index, host) in self.hosts.iter().enumerate() {
            let plan = HostPlan::of(self, host, &delivered);
            if index == 0 {
                let duration = self.duration;
                sim.client(host.as_str(), async move {
                    plan.start();
                    sleep_until(duration).await;
                    Ok(())
                });
            } else {
                sim.host(host.as_str(), move || {
                    let plan = plan.clone();
                    async move {
                        plan.start();
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                });
            }
        }
        sim.run().expect("the replayed traffic runs");
        Replayed { elapsed: sim.elapsed(), delivered: delivered.load(Ordering::Relaxed) }
    }
}

/// What a replay did.
pub struct Replayed {
    pub elapsed: Duration,
    pub delivered: usize,
}

/// One `send` line: `<secs> <host> TRACE esper_sim::net: message=send stream=a:p>b:q offset=N bytes=M`.
struct SentBytes {
    at: Duration,
    from: (String, u16),
    to: (String, u16),
    bytes: usize,
}

impl SentBytes {
    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_ascii_whitespace();
        let at = Duration::try_from_secs_f64(words.next()?.parse().ok()?).ok()?;
        let fields: BTreeMap<&str, &str> = words.filter_map(|word| word.split_once('=')).collect();
        if fields.get("message") != Some(&"send") {
            return None;
        }
        let (from, to) = fields.get("stream")?.split_once('>')?;
        Some(Self { at, from: endpoint(from)?, to: endpoint(to)?, bytes: fields.get("bytes")?.parse().ok()? })
    }
}

fn endpoint(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// What one host does in the replay: the connections it opens, and the ports it
/// listens on with the connections it will accept there, in the order opened.
#[derive(Clone, Debug)]
struct HostPlan {
    opens: Vec<Connection>,
    accepts: BTreeMap<u16, Vec<Connection>>,
    delivered: Arc<AtomicUsize>,
}

impl HostPlan {
    fn of(traffic: &Traffic, host: &str, delivered: &Arc<AtomicUsize>) -> Self {
        let mut plan = Self { opens: Vec::new(), accepts: BTreeMap::new(), delivered: Arc::clone(delivered) };
        for connection in &traffic.connections {
            if connection.client == host {
                plan.opens.push(connection.clone());
            }
            if connection.server == host {
                plan.accepts.entry(connection.port).or_default().push(connection.clone());
            }
        }
        plan
    }

    /// Spawns the host's listeners and connections on the current turmoil host.
    fn start(&self) {
        for (&port, connections) in &self.accepts {
            tokio::spawn(serve(port, connections.clone(), Arc::clone(&self.delivered)));
        }
        for connection in self.opens.clone() {
            let delivered = Arc::clone(&self.delivered);
            tokio::spawn(async move {
                sleep_until(connection.opened).await;
                if let Ok(stream) = TcpStream::connect((connection.server.as_str(), connection.port)).await {
                    carry(stream, connection.client_writes, delivered).await;
                }
            });
        }
    }
}

/// Accepts the connections recorded for `port`, pairing each with the next
/// recorded one from the same host, and writes the listening side's bytes.
async fn serve(port: u16, connections: Vec<Connection>, delivered: Arc<AtomicUsize>) {
    let Ok(listener) = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await else { return };
    let mut pending: BTreeMap<String, VecDeque<Connection>> = BTreeMap::new();
    for connection in connections {
        pending.entry(connection.client.clone()).or_default().push_back(connection);
    }
    while let Ok((stream, peer)) = listener.accept().await {
        let from = pending.iter_mut().find(|(host, _)| turmoil::lookup(host.as_str()) == peer.ip());
        if let Some(connection) = from.and_then(|(_, queue)| queue.pop_front()) {
            tokio::spawn(carry(stream, connection.server_writes, Arc::clone(&delivered)));
        }
    }
}

/// Reads whatever arrives on `stream`, counting it into `delivered`, and writes
/// `writes`, each at its sim time.
async fn carry(stream: TcpStream, writes: Vec<(Duration, usize)>, delivered: Arc<AtomicUsize>) {
    let (mut reader, mut writer) = stream.into_split();
    tokio::spawn(async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        while let Ok(read @ 1..) = reader.read(&mut buffer).await {
            delivered.fetch_add(read, Ordering::Relaxed);
        }
    });
    // One buffer for every write of the connection: the peer's cost is the
    // network's, not an allocation per write.
    let zeros = vec![0_u8; writes.iter().map(|&(_, bytes)| bytes).max().unwrap_or(0)];
    for (at, bytes) in writes {
        sleep_until(at).await;
        if writer.write_all(&zeros[..bytes]).await.is_err() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

async fn sleep_until(at: Duration) {
    let now = turmoil::sim_elapsed().unwrap_or_default();
    tokio::time::sleep(at.saturating_sub(now)).await;
}

/// Replays each recording (its index as turmoil's seed) and returns the sim time
/// they ran. Panics when the far ends read under 99 % of the recorded bytes (a
/// write in a run's last milliseconds may still be in flight when it ends): a
/// peer that carried less than the run would flatter it.
pub fn replay_all(recordings: &[Traffic], physics: &WorldConfig) -> Duration {
    let (mut elapsed, mut sent, mut delivered) = (Duration::ZERO, 0, 0);
    for (seed, traffic) in (0_u64..).zip(recordings) {
        let replayed = traffic.replay(seed, physics);
        elapsed += replayed.elapsed;
        sent += traffic.bytes();
        delivered += replayed.delivered;
    }
    assert!(delivered * 100 >= sent * 99, "the replay carried {delivered} of the recorded {sent} bytes");
    println!("  (replayed: {delivered} of the recorded {sent} bytes read at the far ends)");
    elapsed
}
