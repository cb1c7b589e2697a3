//! Oona's integration checks, written once and run twice: against the simulated
//! Redis inside a turmoil world (the `oona-bus` scenario) and against a real
//! `redis-server` over tokio TCP (`tests/oona_bus.rs`).
//!
//! Each check flushes Redis, drives an [`OonaClient`] and inspects the streams
//! through a second, plain connection, so it asserts on what Redis holds, not on
//! what the client believes.

use std::collections::BTreeMap;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::signing::{sign, unsigned};
use esper_core::leyline::{BusEnvelope, BusMessageType, MessagePriority, SigningKey, VerifyPolicy};
use esper_core::net::Connector;
use esper_core::oona::{
    ClientParts, Delivery, EMERGENCY_THRESHOLD_ENV, FRAME_FIELD, NORMAL_STREAM_ENV, OonaClient, PublishOutcome,
    StreamConfig, StreamConfigError, StreamKind,
};
use esper_sim::redis::FaultHandle;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, Value};

trace_target!("oona_checks");

mod blocking_read;
mod lost_reply;
mod reconnect_pacing;
mod routing;
mod verifier_bounds;

pub(crate) use reconnect_pacing::backoff_ceiling;

/// Unix time the checks' clocks start at (frames only need one consistent clock).
const CLOCK_ORIGIN_MS: u64 = 1_735_689_600_000;
/// Bound on consume rounds a check waits through.
const MAX_ROUNDS: u32 = 200;

/// How a check closes every client connection.
#[derive(Debug, Clone)]
pub enum Resetter {
    /// `CLIENT KILL TYPE normal SKIPME yes` (real Redis).
    ClientKill,
    /// The simulated server's fault handle.
    Handle(FaultHandle),
}

/// Where Redis is and how to reach it.
#[derive(Debug, Clone)]
pub struct BusFixture<C: Connector> {
    /// TCP through the seam.
    pub connector: C,
    /// Redis host name.
    pub host: String,
    /// Redis port.
    pub port: u16,
    /// How to reset connections.
    pub resetter: Resetter,
    /// Seeds the clients' RNGs.
    pub seed: u64,
}

/// A failed check: which, and why.
pub type CheckResult = Result<(), String>;

/// The checks by name, in the order [`run_all`] runs them.
pub const CHECKS: [&str; 15] = [
    "roundtrip",
    "routes",
    "backpressure",
    "emergency_bucket",
    "outbox_full",
    "stream_cap",
    "blocking_read",
    "retry_then_dead_letter",
    "invalid_envelope",
    "forged_frames",
    "freshness_bounds",
    "ledger_full",
    "reconnect",
    "reconnect_pacing",
    "lost_reply",
];

/// Runs every check; the first failure names its check.
pub async fn run_all<C: Connector>(fixture: &BusFixture<C>) -> CheckResult {
    for name in CHECKS {
        run(fixture, name).await.map_err(|error| format!("oona check {name}: {error}"))?;
        tracing::info!(target: TRACE_TARGET, check = name, "oona check passed");
    }
    Ok(())
}

/// Runs the check called `name`.
pub async fn run<C: Connector>(fixture: &BusFixture<C>, name: &str) -> CheckResult {
    let mut admin = fixture.admin().await?;
    command(&mut admin, &redis::cmd("FLUSHALL")).await?;
    match name {
        "roundtrip" => roundtrip(fixture, &mut admin).await,
        "routes" => routing::routes(fixture, &mut admin).await,
        "backpressure" => backpressure(fixture, &mut admin).await,
        "emergency_bucket" => emergency_bucket(fixture).await,
        "outbox_full" => routing::outbox_full(fixture, &mut admin).await,
        "stream_cap" => routing::stream_cap(fixture, &mut admin).await,
        "blocking_read" => blocking_read::blocking_read(fixture, &mut admin).await,
        "retry_then_dead_letter" => retry_then_dead_letter(fixture, &mut admin).await,
        "invalid_envelope" => invalid_envelope(fixture, &mut admin).await,
        "forged_frames" => forged_frames(fixture, &mut admin).await,
        "freshness_bounds" => verifier_bounds::freshness_bounds(fixture, &mut admin).await,
        "ledger_full" => verifier_bounds::ledger_full(fixture, &mut admin).await,
        "reconnect" => reconnect(fixture, &mut admin).await,
        "reconnect_pacing" => reconnect_pacing::reconnect_pacing(fixture).await,
        "lost_reply" => lost_reply::lost_reply(fixture, &mut admin).await,
        other => Err(format!("no check called {other:?}; checks: {}", CHECKS.join(", "))),
    }
}

impl<C: Connector> BusFixture<C> {
    /// An Oona client with `config`.
    pub fn client(&self, config: StreamConfig) -> Result<OonaClient<C, ChaCha8Rng>, String> {
        self.client_verifying(config, checks_policy())
    }

    /// An Oona client with `config` whose consumer verifies under `verify`.
    fn client_verifying(
        &self,
        config: StreamConfig,
        verify: VerifyPolicy,
    ) -> Result<OonaClient<C, ChaCha8Rng>, String> {
        self.client_clocked(config, verify, UnixClock::anchored_at(CLOCK_ORIGIN_MS))
    }

    /// [`BusFixture::client_verifying`] on `clock`, for a check that reads the
    /// client's own clock.
    fn client_clocked(
        &self,
        config: StreamConfig,
        verify: VerifyPolicy,
        clock: UnixClock,
    ) -> Result<OonaClient<C, ChaCha8Rng>, String> {
        let parts = ClientParts { key: bus_key()?, verify, clock, rng: ChaCha8Rng::seed_from_u64(self.seed) };
        Ok(OonaClient::new(self.connector.clone(), &self.host, self.port, config, parts))
    }

    /// The same Redis reached through `connector`, a wrapper around this
    /// fixture's own that makes a fault at the seam.
    fn through<D: Connector>(&self, connector: D) -> BusFixture<D> {
        BusFixture {
            connector,
            host: self.host.clone(),
            port: self.port,
            resetter: self.resetter.clone(),
            seed: self.seed,
        }
    }

    /// A plain connection for inspecting and seeding streams.
    pub async fn admin(&self) -> Result<MultiplexedConnection, String> {
        plain_connection(&self.connector, &self.host, self.port).await
    }
}

/// A plain Redis connection through `connector` (no Oona on top), for checks that
/// read or write streams directly.
pub async fn plain_connection<C: Connector>(
    connector: &C,
    host: &str,
    port: u16,
) -> Result<MultiplexedConnection, String> {
    let stream = connector.connect(host, port).await.map_err(|error| error.to_string())?;
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    let (conn, driver) = MultiplexedConnection::new_with_config(&RedisConnectionInfo::default(), stream, config)
        .await
        .map_err(|error| format!("connecting to {host}:{port}: {error}"))?;
    tokio::spawn(driver);
    Ok(conn)
}

/// The key every check's clients sign and verify with.
fn bus_key() -> Result<SigningKey, String> {
    SigningKey::new(b"esper-oona-checks".to_vec()).map_err(|error| error.to_string())
}

/// The checks' verify policy: a ten-minute freshness window, the default skew.
fn checks_policy() -> VerifyPolicy {
    VerifyPolicy { freshness_window_ms: 600_000, ..VerifyPolicy::default() }
}

/// A config with short waits, so checks run quickly in real time too.
fn quick_config() -> StreamConfig {
    StreamConfig { block: Duration::from_millis(20), read_count: 16, ..StreamConfig::default() }
}

/// An envelope carrying sequence number `seq`.
pub fn envelope(seq: u64, message_type: BusMessageType, priority: MessagePriority) -> BusEnvelope {
    BusEnvelope {
        message_type: message_type.into(),
        payload: seq.to_be_bytes().to_vec(),
        attributes: BTreeMap::from([("seq".to_owned(), seq.to_string())]),
        priority: priority.into(),
    }
}

/// The `seq` attribute of a delivered envelope.
pub fn seq_of(delivery: &Delivery<'_>) -> Option<u64> {
    delivery.envelope.attributes.get("seq").and_then(|seq| seq.parse().ok())
}

async fn command(conn: &mut MultiplexedConnection, cmd: &redis::Cmd) -> Result<Value, String> {
    cmd.query_async(conn).await.map_err(|error| format!("admin command failed: {error}"))
}

async fn int(conn: &mut MultiplexedConnection, cmd: &redis::Cmd) -> Result<i64, String> {
    match command(conn, cmd).await? {
        Value::Int(value) => Ok(value),
        other => Err(format!("expected an integer, got {other:?}")),
    }
}

/// Entries pending in `group` on `stream`.
async fn pending(conn: &mut MultiplexedConnection, stream: &str, group: &str) -> Result<i64, String> {
    match command(conn, redis::cmd("XPENDING").arg(stream).arg(group)).await? {
        Value::Array(summary) => match summary.first() {
            Some(Value::Int(count)) => Ok(*count),
            other => Err(format!("unexpected XPENDING summary head {other:?}")),
        },
        other => Err(format!("unexpected XPENDING reply {other:?}")),
    }
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, found: T, wanted: T) -> CheckResult {
    if found == wanted { Ok(()) } else { Err(format!("{what}: found {found:?}, wanted {wanted:?}")) }
}

async fn roundtrip<C: Connector>(fixture: &BusFixture<C>, admin: &mut MultiplexedConnection) -> CheckResult {
    let mut client = fixture.client(quick_config())?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    client
        .ensure_consumer_group(&normal)
        .await
        .map_err(|error| format!("group creation is not idempotent: {error}"))?;
    for seq in 0..20 {
        let outcome = client.publish(&envelope(seq, BusMessageType::SystemState, MessagePriority::Normal)).await;
        let outcome = outcome.map_err(|error| error.to_string())?;
        let published =
            matches!(outcome, PublishOutcome::Published { stream: StreamKind::Normal, rerouted: false, .. });
        expect("publish outcome is a plain normal publish", published, true)?;
    }
    let seen = handled_seqs(&mut client, &normal, |_, handled| handled >= 20).await?;
    expect("delivered in publish order", seen, (0..20).map(Some).collect())?;
    let metrics = client.metrics_snapshot();
    expect("publish_total, consumed, acked", (metrics.publish_total, metrics.consumed, metrics.acked), (20, 20, 20))?;
    expect("pending after acks", pending(admin, &normal, "oona").await?, 0)
}

/// Adds `count` placeholder entries to `stream` (backpressure only counts them).
async fn fill(admin: &mut MultiplexedConnection, stream: &str, count: u64) -> CheckResult {
    let mut left = count;
    while left > 0 {
        let batch = left.min(500);
        let mut pipe = redis::pipe();
        for _ in 0..batch {
            pipe.cmd("XADD").arg(stream).arg("*").arg("filler").arg("1").ignore();
        }
        pipe.query_async::<()>(admin).await.map_err(|error| format!("filling {stream}: {error}"))?;
        left -= batch;
    }
    Ok(())
}

/// The settings an operator gives Oona through its `OONA_*` variables, here
/// from a map (the sim never reads the process environment): the backpressure
/// check runs on a renamed normal stream with the reroute threshold at 3000.
const OPERATOR_SETTINGS: [(&str, &str); 2] =
    [(NORMAL_STREAM_ENV, "oona.normal.configured"), (EMERGENCY_THRESHOLD_ENV, " 3000 ")];

fn settings<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |var| pairs.iter().find(|(name, _)| *name == var).map(|(_, value)| (*value).to_owned())
}

/// Backpressure on the normal stream as configured through [`OPERATOR_SETTINGS`]:
/// below the reroute threshold a message lands there, from it on it is rerouted
/// to the emergency stream, from the drop threshold (8000) on a normal message is
/// dropped and a critical one never. First, the settings Oona must refuse: a
/// reroute threshold not below the drop threshold, and one that is not a number.
async fn backpressure<C: Connector>(fixture: &BusFixture<C>, admin: &mut MultiplexedConnection) -> CheckResult {
    let refused = |value| StreamConfig::from_lookup(settings(&[(EMERGENCY_THRESHOLD_ENV, value)])).err();
    let order = StreamConfigError::ThresholdOrder { emergency: 8_000, drop: 8_000 };
    expect("a reroute threshold equal to the drop threshold", refused("8000"), Some(order))?;
    let garbled = StreamConfigError::NotANumber {
        var: EMERGENCY_THRESHOLD_ENV,
        value: "3k".to_owned(),
        expected: "a queue depth",
    };
    expect("a reroute threshold that is not a number", refused("3k"), Some(garbled))?;
    let configured = StreamConfig::from_lookup(settings(&OPERATOR_SETTINGS)).map_err(|error| error.to_string())?;
    let quick = quick_config();
    let mut client = fixture.client(StreamConfig { block: quick.block, read_count: quick.read_count, ..configured })?;
    let normal = client.config().normal_stream.clone();
    expect("the configured normal stream", normal.as_str(), "oona.normal.configured")?;
    let plain = |seq| envelope(seq, BusMessageType::SystemState, MessagePriority::Normal);
    fill(admin, &normal, 2_999).await?;
    let below = client.publish(&plain(0)).await.map_err(|error| error.to_string())?;
    expect("depth 2999 publishes to normal", matches!(below, PublishOutcome::Published { rerouted: false, .. }), true)?;
    let at = client.publish(&plain(1)).await.map_err(|error| error.to_string())?;
    let rerouted = PublishOutcome::Published { stream: StreamKind::Emergency, id: String::new(), rerouted: true };
    expect("depth 3000 reroutes", same_route(&at, &rerouted), true)?;
    fill(admin, &normal, 4_999).await?;
    let still = client.publish(&plain(2)).await.map_err(|error| error.to_string())?;
    expect("depth 7999 reroutes, not drops", same_route(&still, &rerouted), true)?;
    fill(admin, &normal, 1).await?;
    let dropped = client.publish(&plain(3)).await.map_err(|error| error.to_string())?;
    expect("depth 8000 drops a normal message", dropped, PublishOutcome::Dropped { depth: 8_000 })?;
    let critical = envelope(4, BusMessageType::SystemState, MessagePriority::Critical);
    let kept = client.publish(&critical).await.map_err(|error| error.to_string())?;
    let emergency = PublishOutcome::Published { stream: StreamKind::Emergency, id: String::new(), rerouted: false };
    expect("a critical message is never dropped", same_route(&kept, &emergency), true)?;
    let metrics = client.metrics_snapshot();
    let counters = (metrics.publish_rerouted, metrics.publish_dropped, metrics.queue_depth_max, metrics.publish_total);
    expect("rerouted, dropped, depth max, total", counters, (2, 1, 8_000, 4))?;
    expect("normal depth", int(admin, redis::cmd("XLEN").arg(&normal)).await?, 8_000)
}

/// Same stream and reroute flag (ids differ run to run).
fn same_route(found: &PublishOutcome, wanted: &PublishOutcome) -> bool {
    match (found, wanted) {
        (
            PublishOutcome::Published { stream, rerouted, .. },
            PublishOutcome::Published { stream: wanted_stream, rerouted: wanted_rerouted, .. },
        ) => stream == wanted_stream && rerouted == wanted_rerouted,
        _ => false,
    }
}

/// The emergency bucket: three high-priority publishes empty a bucket of three,
/// the fourth is rate limited, a critical one bypasses it; five seconds later,
/// at twelve tokens a minute, one more high-priority publish goes and the next
/// does not. (A token every 5 s leaves a real machine seconds of slack between
/// publishes that must see the same bucket.)
async fn emergency_bucket<C: Connector>(fixture: &BusFixture<C>) -> CheckResult {
    let config = StreamConfig { emergency_burst: 3, emergency_max_per_min: 12, ..quick_config() };
    let mut client = fixture.client(config)?;
    let mut outcomes = Vec::new();
    for seq in 0..4 {
        let high = envelope(seq, BusMessageType::Telemetry, MessagePriority::High);
        outcomes.push(client.publish(&high).await.map_err(|error| error.to_string())?);
    }
    let limited: Vec<bool> = outcomes.iter().map(|outcome| *outcome == PublishOutcome::RateLimited).collect();
    expect("the fourth high-priority publish is rate limited", limited, vec![false, false, false, true])?;
    let critical = envelope(4, BusMessageType::Telemetry, MessagePriority::Critical);
    let kept = client.publish(&critical).await.map_err(|error| error.to_string())?;
    expect("critical bypasses the bucket", matches!(kept, PublishOutcome::Published { .. }), true)?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut refilled = Vec::new();
    for seq in 5..7 {
        let high = envelope(seq, BusMessageType::Telemetry, MessagePriority::High);
        refilled.push(client.publish(&high).await.map_err(|error| error.to_string())? == PublishOutcome::RateLimited);
    }
    expect("five seconds later, one token has come back", refilled, vec![false, true])?;
    let metrics = client.metrics_snapshot();
    expect("emergency published, rate dropped", (metrics.emergency_published, metrics.emergency_rate_dropped), (5, 2))
}

async fn retry_then_dead_letter<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
) -> CheckResult {
    // A cache of verified entries holding exactly the one entry redelivered: a
    // redelivery must come from it (verifying the frame again would find its
    // nonce already seen and reject it as a replay).
    let config =
        StreamConfig { retry_idle: Duration::ZERO, retry_max_attempts: 3, verified_cache: 1, ..quick_config() };
    let mut client = fixture.client(config)?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    client
        .publish(&envelope(7, BusMessageType::SystemState, MessagePriority::Normal))
        .await
        .map_err(|e| e.to_string())?;
    let mut deliveries = Vec::new();
    let mut tallies = Vec::new();
    for round in 0..4 {
        let consumed = client.consume(&normal, |delivery| {
            deliveries.push(delivery.deliveries);
            Err("handler refuses")
        });
        let tally = consumed.await.map_err(|error| error.to_string())?;
        tallies.push((tally.failed, tally.dead_lettered));
        if round == 0 {
            let held = client.pending(&normal, 10).await.map_err(|error| error.to_string())?;
            let counts: Vec<u64> = held.iter().map(|(_, count)| *count).collect();
            expect("the client's own XPENDING after one refusal (delivery counts)", counts, vec![1])?;
        }
    }
    expect("delivery counts seen by the handler", deliveries, vec![1, 2, 3])?;
    expect("each round's (failed, dead-lettered)", tallies, vec![(1, 0), (1, 0), (1, 0), (0, 1)])?;
    let metrics = client.metrics_snapshot();
    let counters = (metrics.handler_failed, metrics.retries_exhausted, metrics.dead_letter_total, metrics.claimed);
    expect("failed, exhausted, dead-lettered, claimed", counters, (3, 1, 1, 3))?;
    expect("pending after dead-lettering", pending(admin, &normal, "oona").await?, 0)?;
    let dead = command(admin, redis::cmd("XRANGE").arg("oona.deadletter").arg("-").arg("+")).await?;
    let text = format!("{dead:?}");
    expect("dead letter names the reason", text.contains("handler failed 3 deliveries"), true)
}

async fn invalid_envelope<C: Connector>(fixture: &BusFixture<C>, admin: &mut MultiplexedConnection) -> CheckResult {
    let mut client = fixture.client(quick_config())?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    command(admin, redis::cmd("XADD").arg(&normal).arg("*").arg("frame").arg("not a frame")).await?;
    command(admin, redis::cmd("XADD").arg(&normal).arg("*").arg("other").arg("field")).await?;
    let both_dead = |client: &OonaClient<C, ChaCha8Rng>, _| client.metrics_snapshot().dead_letter_total >= 2;
    let handled = handled_seqs(&mut client, &normal, both_dead).await?.len();
    expect("handler never sees an invalid entry", handled, 0)?;
    let metrics = client.metrics_snapshot();
    expect("invalid, dead-lettered", (metrics.invalid_envelopes, metrics.dead_letter_total), (2, 2))?;
    expect("pending", pending(admin, &normal, "oona").await?, 0)?;
    expect("dead-letter depth", int(admin, redis::cmd("XLEN").arg("oona.deadletter")).await?, 2)
}

/// Entries whose frames are not what they claim — stamped before the freshness
/// window or beyond the allowed skew ahead, signed with another key, unsigned, or
/// a genuine frame added a second time — never reach the handler: the consumer's
/// verifier refuses each under its own counter and Oona dead-letters it with the
/// reason. The genuine frames (one fresh, one half a window old, one half the skew
/// ahead, the first copy of the replayed one) are handled. Then
/// [`unsigned_allowed`].
async fn forged_frames<C: Connector>(fixture: &BusFixture<C>, admin: &mut MultiplexedConnection) -> CheckResult {
    let mut client = fixture.client(quick_config())?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    let (key, policy) = (bus_key()?, checks_policy());
    let other = SigningKey::new(b"not-the-bus-key".to_vec()).map_err(|error| error.to_string())?;
    let mut rng = ChaCha8Rng::seed_from_u64(fixture.seed.wrapping_add(1));
    let now = UnixClock::anchored_at(CLOCK_ORIGIN_MS).now_ms();
    let (window, skew) = (policy.freshness_window_ms, policy.max_future_skew_ms);
    let note = |seq| envelope(seq, BusMessageType::SystemState, MessagePriority::Normal);
    let replayed = sign(&key, &note(4), now, &mut rng);
    let frames = [
        sign(&key, &note(1), now, &mut rng),
        sign(&key, &note(2), now - window / 2, &mut rng),
        sign(&key, &note(3), now + skew / 2, &mut rng),
        replayed.clone(),
        replayed,
        sign(&key, &note(5), now - 2 * window, &mut rng),
        sign(&key, &note(6), now + 12 * skew, &mut rng),
        sign(&other, &note(7), now, &mut rng),
        unsigned(&note(8), now, &mut rng),
    ];
    add_frames(admin, &normal, &frames).await?;
    let all_settled = |client: &OonaClient<C, ChaCha8Rng>, handled: usize| {
        handled + client.metrics_snapshot().dead_letter_total as usize >= frames.len()
    };
    let handled = handled_seqs(&mut client, &normal, all_settled).await?;
    expect("handled", handled, vec![Some(1), Some(2), Some(3), Some(4)])?;
    let v = client.verify_counters();
    let refused =
        (v.rejected_replayed, v.rejected_stale, v.rejected_future, v.rejected_bad_mac, v.rejected_missing_signature);
    expect("accepted signed, unsigned", (v.accepted, v.unsigned_accepted), (4, 0))?;
    expect("refused replayed, stale, future, bad MAC, unsigned", refused, (1, 1, 1, 1, 1))?;
    let dead = command(admin, redis::cmd("XRANGE").arg("oona.deadletter").arg("-").arg("+")).await?;
    let text = format!("{dead:?}");
    let reasons = ["replay", "stale", "in the future", "signature does not match", "unsigned"];
    let positions: Vec<Option<usize>> = reasons.iter().map(|reason| text.find(reason)).collect();
    let in_order = positions.windows(2).all(|pair| matches!(pair, [Some(a), Some(b)] if a < b));
    expect("dead letters name each refusal, in the order added", in_order, true)?;
    unsigned_allowed(fixture, admin, [unsigned(&note(9), now, &mut rng), sign(&key, &note(10), now, &mut rng)]).await
}

/// A consumer that accepts unsigned frames (`accept_unsigned`) hands them on, and
/// counts them apart from the signed ones.
async fn unsigned_allowed<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
    frames: [Vec<u8>; 2],
) -> CheckResult {
    let config = StreamConfig { normal_stream: "oona.normal.unsigned-allowed".to_owned(), ..quick_config() };
    let mut client = fixture.client_verifying(config, VerifyPolicy { accept_unsigned: true, ..checks_policy() })?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    add_frames(admin, &normal, &frames).await?;
    let handled = handled_seqs(&mut client, &normal, |_, handled| handled >= frames.len()).await?;
    expect("handled with unsigned frames allowed", handled, vec![Some(9), Some(10)])?;
    let counters = client.verify_counters();
    expect("accepted signed, unsigned", (counters.accepted, counters.unsigned_accepted), (1, 1))
}

/// Adds each frame to `stream` as an entry of its own, the way a producer outside
/// Oona (or an attacker with access to Redis) would.
async fn add_frames(admin: &mut MultiplexedConnection, stream: &str, frames: &[Vec<u8>]) -> CheckResult {
    for frame in frames {
        command(admin, redis::cmd("XADD").arg(stream).arg("*").arg(FRAME_FIELD).arg(frame.as_slice())).await?;
    }
    Ok(())
}

/// The `seq` of every delivery `client`'s handler took from `stream`, in order,
/// consuming until `done(client, deliveries handled)` or [`MAX_ROUNDS`] rounds.
async fn handled_seqs<C: Connector>(
    client: &mut OonaClient<C, ChaCha8Rng>,
    stream: &str,
    done: impl Fn(&OonaClient<C, ChaCha8Rng>, usize) -> bool,
) -> Result<Vec<Option<u64>>, String> {
    let mut handled = Vec::new();
    for _ in 0..MAX_ROUNDS {
        if done(client, handled.len()) {
            break;
        }
        let round = client.consume(stream, |delivery| {
            handled.push(seq_of(delivery));
            Ok::<(), String>(())
        });
        round.await.map_err(|error| error.to_string())?;
    }
    Ok(handled)
}

async fn reconnect<C: Connector>(fixture: &BusFixture<C>, admin: &mut MultiplexedConnection) -> CheckResult {
    let mut client = fixture.client(quick_config())?;
    let plain = |seq| envelope(seq, BusMessageType::SystemState, MessagePriority::Normal);
    client.publish(&plain(0)).await.map_err(|error| error.to_string())?;
    match &fixture.resetter {
        Resetter::ClientKill => {
            let kill = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").clone();
            command(admin, &kill).await?;
        }
        Resetter::Handle(handle) => handle.reset_connections(),
    }
    let after = client.publish(&plain(1)).await.map_err(|error| format!("publish after a reset: {error}"))?;
    expect("publish after a reset", matches!(after, PublishOutcome::Published { .. }), true)?;
    expect("reconnects", client.metrics_snapshot().reconnects, 1)
}
