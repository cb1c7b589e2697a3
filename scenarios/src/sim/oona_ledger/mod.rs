//! `oona-ledger`: Oona's delivery ledger balances under partitions and Redis crashes.
//!
//! A publisher sends a stream of state messages (about a third critical) while a
//! consumer group member reads both the normal and the emergency stream, its
//! handler failing now and then. The schedule, drawn from the seed, cuts the
//! publisher's and the consumer's links to Redis and crashes Redis (losing what
//! it had not yet fsynced) and restarts it. Thresholds are scaled down so that
//! backpressure reroutes and drops happen while the consumer is cut off.
//!
//! At the end the ledger must balance:
//! * every critical message whose publish returned `Published` was handled by
//!   the group at least once, and no critical message was ever dropped;
//! * every drop was of a non-critical message and is counted in the publisher's
//!   `publish_dropped` + `emergency_rate_dropped`;
//! * a non-critical message acknowledged by XADD and never delivered was
//!   acknowledged within the durability window before a Redis crash (the one
//!   loss Redis's everysec persistence allows);
//! * nothing was delivered that was not published;
//! * the publisher counted at least as many republishes as there are critical
//!   messages whose acknowledged entry Redis no longer holds at the end (asked
//!   with `XRANGE` once the consumer is done): each was lost after its
//!   acknowledgement, while the outbox held it;
//! * at the end nothing is pending in the group (the consumer saw a quiet round
//!   on both streams before its deadline) and the publisher's outbox is empty —
//!   otherwise the invariant fails naming the entries still pending.
//!
//! Then `telemetry-complete` ([`telemetry`]): once the faults are over, the
//! publisher's own Oona snapshot, sent as telemetry, must show every counter it
//! moved in Nissa's `/metrics`.
//!
//! As a drill (`esper sweep --scenario oona-ledger`) the schedule is generated
//! instead: partitions, holds, loss and latency on both clients' links, Redis
//! crashing, stalling, answering slowly or with errors, dropping connections.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::{BusMessageType, MessagePriority, SigningKey, VerifyPolicy};
use esper_core::oona::{
    ClientParts, ConsumeRound, Delivery, OonaClient, OonaError, OonaMetrics, PublishOutcome, StreamConfig,
};
use esper_core::planted::Planted;
use esper_sim::redis::ServerConfig;
use esper_sim::{
    Fault, FaultSchedule, FaultSpace, Invariant, RngTree, ScheduledFault, SimScenario, TurmoilConnector, World,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use redis::Value;
use tokio::time::{Instant, sleep, sleep_until};

mod telemetry;

use crate::sim::oona_bus::REDIS_PORT;
use crate::sim::oona_checks::{envelope, plain_connection, seq_of};

trace_target!("oona_ledger");

const REDIS: &str = "redis";
const PUBLISHER: &str = "publisher";
const CONSUMER: &str = "consumer";
/// Messages published, one every [`PUBLISH_EVERY`].
const MESSAGES: u64 = 120;
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Faults strike within this much sim time from the start.
const FAULT_HORIZON_MS: u64 = 12_000;
/// Attempts at one critical publish before the publisher gives up (and fails the run).
const CRITICAL_ATTEMPTS: u32 = 300;
/// The consumer stops here even if the ledger is not yet balanced.
const CONSUMER_DEADLINE: Duration = Duration::from_secs(90);
/// Unix time the clients' clocks start at.
const CLOCK_ORIGIN_MS: u64 = 1_735_689_600_000;

/// The bus key both clients sign and verify with.
const LEDGER_KEY: &[u8] = b"oona-ledger";

/// How long after its write Redis (fsync every second) may still lose an entry in a crash.
const REDIS_LOSS_WINDOW: Duration = Duration::from_secs(2);

/// The scenario. [`OonaLedgerScenario::without_outbox`] is the broken twin that
/// proves the audit catches lost critical messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct OonaLedgerScenario {
    no_outbox: bool,
}

impl OonaLedgerScenario {
    /// The scenario as registered.
    pub const fn new() -> Self {
        Self { no_outbox: false }
    }

    /// The same world with the publisher's critical outbox switched off through
    /// its config (a zero durability window): critical messages a crash loses are
    /// not republished. Test use only; not in the registry.
    pub const fn without_outbox() -> Self {
        Self { no_outbox: true }
    }
}

/// What the publisher did with each message and what the consumer saw.
#[derive(Debug, Default)]
struct Ledger {
    /// Publishes Redis acknowledged: seq → (critical, sim times the successful
    /// publish call started and returned; Redis wrote the entry in between).
    acked: BTreeMap<u64, (bool, Duration, Duration)>,
    /// Where each acknowledged critical publish landed: seq → (stream, id) from
    /// XADD's reply (what the republish audit asks Redis for).
    critical_entries: BTreeMap<u64, (String, String)>,
    /// Critical messages whose acknowledged entry Redis no longer holds at the end.
    vanished: BTreeSet<u64>,
    /// Publishes Oona dropped (backpressure or the emergency bucket): seq → critical.
    dropped: BTreeMap<u64, bool>,
    /// Non-critical publishes that failed (Redis unreachable); they may or may not have landed.
    failed: BTreeSet<u64>,
    /// Successful handlings per seq.
    handled: BTreeMap<u64, u32>,
    /// Failed handler attempts per seq.
    refused: BTreeMap<u64, u32>,
    /// The publisher's counters, once it is done.
    publisher: Option<OonaMetrics>,
    /// Sim time of the publisher's last acknowledged command before its
    /// counters were taken (the outbox's final `PING`).
    publisher_last_ok: Duration,
}

type Shared = Rc<RefCell<Ledger>>;

impl SimScenario for OonaLedgerScenario {
    fn name(&self) -> &'static str {
        if self.no_outbox { "oona-ledger-no-outbox" } else { "oona-ledger" }
    }

    fn summary(&self) -> &'static str {
        "Oona publisher and consumer across partitions and Redis crashes; the delivery ledger must balance"
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("oona-ledger");
        let mut faults = Vec::new();
        for client in [PUBLISHER, CONSUMER] {
            for _ in 0..draws.random_range(0..=2) {
                let start = draws.random_range(500..FAULT_HORIZON_MS);
                let end = start + draws.random_range(200..4_000);
                let link = || (client.to_owned(), REDIS.to_owned());
                let ((a, b), (c, d)) = (link(), link());
                faults.push(ScheduledFault { at_ms: start, fault: Fault::Partition { a, b } });
                faults.push(ScheduledFault { at_ms: end, fault: Fault::Repair { a: c, b: d } });
            }
        }
        let mut at = 0;
        for _ in 0..draws.random_range(0..=2) {
            at += draws.random_range(500..6_000);
            let down = draws.random_range(100..2_000);
            faults.push(ScheduledFault { at_ms: at, fault: Fault::Crash { host: REDIS.to_owned() } });
            faults.push(ScheduledFault { at_ms: at + down, fault: Fault::Restart { host: REDIS.to_owned() } });
            at += down;
        }
        FaultSchedule::new(faults)
    }

    fn fault_space(&self) -> Option<FaultSpace> {
        // The publisher's traffic spans 12 s; faults up to 4 s long within it.
        let space = FaultSpace::new(Duration::from_millis(FAULT_HORIZON_MS), Duration::from_secs(4), 6)
            .link(PUBLISHER, REDIS)
            .link(CONSUMER, REDIS)
            .crashable(&[REDIS])
            .stallable(&[REDIS])
            .redis(REDIS);
        Some(space)
    }

    fn populate(&self, world: &mut World) {
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        let at = |wanted: fn(&Fault) -> bool| -> Vec<Duration> {
            let faults = world.schedule().faults().iter();
            faults
                .filter(|scheduled| wanted(&scheduled.fault))
                .map(|scheduled| Duration::from_millis(scheduled.at_ms))
                .collect()
        };
        let crashes = at(|fault| matches!(fault, Fault::Crash { .. }));
        let restarts = at(|fault| matches!(fault, Fault::Restart { .. }));
        // The snapshot goes out after the last fault plus the window in which a
        // crash could still lose an acknowledged entry.
        let last_fault_ms = world.schedule().faults().last().map_or(0, |last| last.at_ms);
        let quiet_at = Duration::from_millis(last_fault_ms) + REDIS_LOSS_WINDOW;
        let ledger = Shared::default();
        let rng = world.rng().child("oona-ledger");
        let (publisher_rng, consumer_rng) = (rng.stream(PUBLISHER), rng.stream(CONSUMER));
        let (publisher_bus, consumer_bus) = (rng.stream("publisher.bus"), rng.stream("consumer.bus"));
        let for_publisher = Rc::clone(&ledger);
        let planted = world.planted();
        let mut publisher_config = StreamConfig { planted, ..config(PUBLISHER) };
        if self.no_outbox {
            publisher_config.durability_window = Duration::ZERO;
        }
        world.client(PUBLISHER, async move {
            // The same anchor as the client's own clock, taken at the same sim time.
            let clock = UnixClock::anchored_at(CLOCK_ORIGIN_MS);
            let bus = client(publisher_config, publisher_bus)?;
            publish_all(&for_publisher, bus, publisher_rng, (quiet_at, planted, clock)).await
        });
        world.client(CONSUMER, async move {
            let bus = client(StreamConfig { planted, ..config(CONSUMER) }, consumer_bus)?;
            consume_all(&ledger, bus, consumer_rng).await.map_err(|detail| Invariant::OonaLedger.violated(detail))?;
            find_vanished(&ledger).await.map_err(|detail| Invariant::OonaLedger.violated(detail))?;
            audit(&ledger.borrow(), &crashes, REDIS_LOSS_WINDOW)
                .and_then(|()| audit_restarts(&ledger.borrow(), &restarts))
                .map_err(|detail| Invariant::OonaLedger.violated(detail).into())
        });
    }
}

/// Oona's settings for this world: small thresholds so backpressure happens,
/// short timeouts so outages are noticed quickly.
fn config(consumer: &str) -> StreamConfig {
    StreamConfig {
        consumer: consumer.to_owned(),
        emergency_threshold: 40,
        backpressure_drop_threshold: 80,
        emergency_burst: 10,
        emergency_max_per_min: 60,
        read_count: 8,
        block: Duration::from_millis(200),
        retry_idle: Duration::from_secs(2),
        command_timeout: Duration::from_secs(1),
        reconnect_cap: Duration::from_secs(1),
        reconnect_attempts: 4,
        ..StreamConfig::default()
    }
}

type Bus = OonaClient<TurmoilConnector, ChaCha8Rng>;

/// A client with `config` whose nonces and jitter come from `rng`.
fn client(config: StreamConfig, rng: ChaCha8Rng) -> Result<Bus, String> {
    let parts = ClientParts {
        key: SigningKey::new(LEDGER_KEY.to_vec()).map_err(|error| error.to_string())?,
        verify: VerifyPolicy { freshness_window_ms: 600_000, ..VerifyPolicy::default() },
        clock: UnixClock::anchored_at(CLOCK_ORIGIN_MS),
        rng,
    };
    Ok(OonaClient::new(TurmoilConnector, REDIS, REDIS_PORT, config, parts))
}

fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

async fn publish_all(
    ledger: &Shared,
    mut bus: Bus,
    mut rng: ChaCha8Rng,
    (quiet_at, planted, clock): (Duration, Planted, UnixClock),
) -> turmoil::Result {
    let start = Instant::now();
    for seq in 0..MESSAGES {
        sleep_until(start + PUBLISH_EVERY * u32::try_from(seq).unwrap_or(u32::MAX)).await;
        let critical = rng.random_bool(0.3);
        let priority = if critical { MessagePriority::Critical } else { MessagePriority::Normal };
        let message = envelope(seq, BusMessageType::SystemState, priority);
        for attempt in 1..=CRITICAL_ATTEMPTS {
            let started = sim_now();
            match bus.publish(&message).await {
                Ok(PublishOutcome::Published { stream, id, .. }) => {
                    let mut ledger = ledger.borrow_mut();
                    ledger.acked.insert(seq, (critical, started, sim_now()));
                    if critical {
                        ledger.critical_entries.insert(seq, (stream.name(bus.config()).to_owned(), id));
                    }
                    break;
                }
                Ok(PublishOutcome::Dropped { .. } | PublishOutcome::RateLimited) => {
                    ledger.borrow_mut().dropped.insert(seq, critical);
                    break;
                }
                Err(error) if critical && attempt < CRITICAL_ATTEMPTS => {
                    tracing::info!(target: TRACE_TARGET, seq, attempt, %error, "critical publish failed; retrying");
                    sleep(Duration::from_millis(200)).await;
                }
                Err(error) if critical => return Err(format!("critical message {seq} never published: {error}").into()),
                Err(_) => {
                    ledger.borrow_mut().failed.insert(seq);
                    break;
                }
            }
        }
    }
    drain_outbox(&mut bus).await.map_err(|detail| Invariant::OonaLedger.violated(detail))?;
    let counters = bus.metrics_snapshot();
    ledger.borrow_mut().publisher_last_ok = sim_now();
    let key = SigningKey::new(LEDGER_KEY.to_vec()).map_err(|error| error.to_string())?;
    let reporter = telemetry::Bus { client: &mut bus, host: REDIS, port: REDIS_PORT, key, clock };
    telemetry::report_and_check(reporter, quiet_at, planted).await?;
    // Only now is the publisher done: the consumer's audit (and its closing
    // summary line) comes after the snapshot's check, and judges the counters of
    // the ledger's own traffic.
    ledger.borrow_mut().publisher = Some(counters);
    Ok(())
}

/// Keeps the publisher around until no critical message can still be lost: the
/// outbox must empty.
async fn drain_outbox(bus: &mut Bus) -> Result<(), String> {
    for _ in 0..CRITICAL_ATTEMPTS {
        match bus.sync_outbox().await {
            Ok(0) => return Ok(()),
            Ok(_) | Err(_) => sleep(Duration::from_millis(200)).await,
        }
    }
    Err(format!("{} critical messages never became durable", bus.outbox_len()))
}

async fn consume_all(ledger: &Shared, mut bus: Bus, mut rng: ChaCha8Rng) -> Result<(), String> {
    let streams = [bus.config().normal_stream.clone(), bus.config().emergency_stream.clone()];
    let start = Instant::now();
    let mut drained = false;
    while !drained && start.elapsed() < CONSUMER_DEADLINE {
        for stream in &streams {
            if let Err(error) = round(&mut bus, stream, ledger, &mut rng).await {
                tracing::info!(target: TRACE_TARGET, %error, "consume round failed; retrying");
                sleep(Duration::from_millis(100)).await;
            }
        }
        drained = settled(&ledger.borrow()) && quiet(&mut bus, &streams, ledger, &mut rng).await;
    }
    let pending = still_pending(&mut bus, &streams).await;
    // Nothing left pending: whatever was never handled was lost before it reached
    // the group (a Redis crash), and the audit, which knows the crash windows and
    // which messages were critical, judges that loss with the better detail.
    if pending.is_empty() {
        return Ok(());
    }
    let ledger = ledger.borrow();
    let unhandled: Vec<u64> =
        ledger.acked.iter().filter(|(seq, _)| !ledger.handled.contains_key(seq)).map(|(seq, _)| *seq).collect();
    Err(format!(
        "the group is not drained at the end (consumer deadline {} s): still pending {pending:?}; \
         acknowledged messages never handled {unhandled:?}",
        CONSUMER_DEADLINE.as_secs()
    ))
}

/// What Redis holds pending in the group on `streams`, as `stream/id`, or why it
/// could not be read.
async fn still_pending(bus: &mut Bus, streams: &[String; 2]) -> Vec<String> {
    let mut pending = Vec::new();
    for stream in streams {
        match bus.pending(stream, 100).await {
            Ok(entries) => pending.extend(entries.into_iter().map(|(id, _)| format!("{stream}/{id}"))),
            Err(error) => pending.push(format!("{stream}: unreadable ({error})")),
        }
    }
    pending
}

/// One consume round whose handler records deliveries and sometimes fails (at
/// most twice per message, so retries are exercised but never exhausted).
async fn round(bus: &mut Bus, stream: &str, ledger: &Shared, rng: &mut ChaCha8Rng) -> Result<ConsumeRound, OonaError> {
    let handler = |delivery: &Delivery<'_>| {
        let seq = seq_of(delivery).ok_or("a delivery without a seq attribute")?;
        let mut ledger = ledger.borrow_mut();
        let refusals = ledger.refused.get(&seq).copied().unwrap_or(0);
        if refusals < 2 && rng.random_bool(0.05) {
            *ledger.refused.entry(seq).or_default() += 1;
            return Err("handler fails this time");
        }
        *ledger.handled.entry(seq).or_default() += 1;
        Ok(())
    };
    bus.consume(stream, handler).await
}

/// The publisher is done and every critical message it got acknowledged was handled.
fn settled(ledger: &Ledger) -> bool {
    ledger.publisher.is_some()
        && ledger.acked.iter().all(|(seq, (critical, ..))| !critical || ledger.handled.contains_key(seq))
}

/// Whether, once every pending entry is past the retry idle time, a round on each
/// stream finds nothing at all: nothing new, nothing left pending.
async fn quiet(bus: &mut Bus, streams: &[String; 2], ledger: &Shared, rng: &mut ChaCha8Rng) -> bool {
    sleep(bus.config().retry_idle).await;
    let mut quiet = true;
    for stream in streams {
        match round(bus, stream, ledger, rng).await {
            Ok(round) => quiet &= round == ConsumeRound::default(),
            Err(_) => quiet = false,
        }
    }
    quiet
}

/// The publisher counted the Redis restarts it could have seen: a restart after
/// its first acknowledged publish (it was connected to one Redis start then) and
/// before its last acknowledged command (the outbox's final `PING`, on a later
/// start) gave it a new `run_id` at least once; and it cannot have seen more
/// restarts than happened.
fn audit_restarts(ledger: &Ledger, restarts: &[Duration]) -> Result<(), String> {
    let publisher = ledger.publisher.ok_or("the publisher did not finish")?;
    let first_ok = ledger.acked.values().map(|(_, _, acked_at)| *acked_at).min();
    let seeable = restarts
        .iter()
        .filter(|at| first_ok.is_some_and(|first| first < **at) && **at < ledger.publisher_last_ok)
        .count() as u64;
    let seen = publisher.server_restarts;
    if (seeable > 0 && seen == 0) || seen > restarts.len() as u64 {
        return Err(format!(
            "the publisher counted {seen} Redis restarts; Redis restarted {} times, {seeable} of them between \
             its first acknowledged publish at {first_ok:?} and its last acknowledged command at {:?}",
            restarts.len(),
            ledger.publisher_last_ok
        ));
    }
    Ok(())
}

/// Every critical entry Redis acknowledged and no longer holds was lost after
/// the acknowledgement (nothing here trims or deletes an entry), while the outbox
/// still held the message (a crash loses only entries younger than the window it
/// holds them for): the outbox found each gone and published it again, so the
/// publisher counts at least that many republishes. At least: a republished
/// entry lost in a later crash is republished once more.
fn check_republished(ledger: &Ledger, republished: u64) -> Result<(), String> {
    let vanished = ledger.vanished.len() as u64;
    if vanished <= republished {
        return Ok(());
    }
    Err(format!(
        "Redis no longer holds the acknowledged entries of critical messages {:?}, but the publisher counted \
         {republished} republishes",
        ledger.vanished
    ))
}

/// Asks Redis, once the consumer is done, which critical messages' acknowledged
/// entries it still holds, and notes those it does not.
async fn find_vanished(ledger: &Shared) -> Result<(), String> {
    let mut redis = plain_connection(&TurmoilConnector, REDIS, REDIS_PORT).await?;
    let critical = ledger.borrow().critical_entries.clone();
    for (seq, (stream, id)) in critical {
        let found: Value = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(&id)
            .arg(&id)
            .query_async(&mut redis)
            .await
            .map_err(|error| format!("XRANGE {stream} {id}: {error}"))?;
        match found {
            Value::Array(items) if items.is_empty() => _ = ledger.borrow_mut().vanished.insert(seq),
            Value::Array(_) => {}
            other => return Err(format!("XRANGE {stream} {id} answered {other:?}")),
        }
    }
    Ok(())
}

/// The ledger's balance; `crashes` are the sim times Redis crashed at.
fn audit(ledger: &Ledger, crashes: &[Duration], window: Duration) -> Result<(), String> {
    let publisher = ledger.publisher.ok_or("the publisher did not finish")?;
    if let Some(seq) = ledger.dropped.iter().find_map(|(seq, critical)| critical.then_some(seq)) {
        return Err(format!("critical message {seq} was dropped"));
    }
    let counted = publisher.publish_dropped + publisher.emergency_rate_dropped;
    if counted != ledger.dropped.len() as u64 {
        return Err(format!("{} drops seen, {counted} counted ({publisher:?})", ledger.dropped.len()));
    }
    let mut lost = 0;
    for (seq, (critical, started, acked_at)) in &ledger.acked {
        if ledger.handled.contains_key(seq) {
            continue;
        }
        let lost_to_crash = crashes.iter().any(|crash| *started <= *crash && *crash < *acked_at + window);
        if *critical || !lost_to_crash {
            return Err(format!("message {seq} (critical: {critical}) acked at {acked_at:?} was never handled"));
        }
        lost += 1;
    }
    check_republished(ledger, publisher.republished)?;
    let phantom = ledger.handled.keys().find(|seq| !ledger.acked.contains_key(seq) && !ledger.failed.contains(seq));
    if let Some(seq) = phantom {
        return Err(format!("message {seq} was handled but never published"));
    }
    tracing::info!(
        target: TRACE_TARGET,
        acked = ledger.acked.len(),
        dropped = ledger.dropped.len(),
        failed = ledger.failed.len(),
        handled = ledger.handled.len(),
        lost_to_crash = lost,
        republished = publisher.republished,
        "oona ledger balances"
    );
    Ok(())
}
