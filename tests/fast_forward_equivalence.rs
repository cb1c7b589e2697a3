//! Fast-forward is invisible: every registered scenario, seeds 0..16, gives the
//! same trace hash with idle fast-forward on (the default) and off (turmoil's
//! tick-by-tick stepping).
//!
//! `tests/trace_hashes.rs` pins the hashes of seeds 0..8 with fast-forward on;
//! this test covers twice the seeds and compares with the stepping the pins were
//! first recorded with. The hazards it guards (`../shared/reference/sim-speed.md`):
//! a skipped tick must still draw tokio's per-entry RNG seed and count its
//! scheduler ticks, and no tick may be skipped past a message, a timer or a fault.
//! The last two tests show the comparison failing on a fast-forward that
//! overshoots a fault, and hold the scheduler-tick count a skipped tick must
//! reproduce (`an_idle_tick_counts_the_scheduler_ticks_of_stepping`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esper_scenarios::registry;
use esper_sim::{RunReport, SimScenario, TraceMode, World, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEEDS: std::ops::Range<u64> = 0..16;

/// One run of `scenario` at `seed` under its own schedule, fast-forward `on` or off.
fn run(scenario: &dyn SimScenario, seed: u64, fast_forward: bool) -> RunReport {
    let schedule = scenario.schedule(&esper_sim::RngTree::new(seed).child("faults"));
    let config = WorldConfig { fast_forward, ..scenario.world_config() };
    let mut world = World::with_config(seed, schedule, &config);
    scenario.populate(&mut world);
    world.run(scenario.name(), TraceMode::Hash)
}

fn same_hash_with_and_without_fast_forward(name: &str) {
    let scenario = registry::find(name).expect("registered");
    let mut differences = Vec::new();
    for seed in SEEDS {
        let (stepped, skipped) = (run(scenario, seed, false), run(scenario, seed, true));
        if (&stepped.hash, stepped.sim_elapsed) != (&skipped.hash, skipped.sim_elapsed) {
            differences.push(format!(
                "seed {seed}: stepping {} ({} events, {:?}), fast-forward {} ({} events, {:?}); replay: {}",
                stepped.hash,
                stepped.events,
                stepped.sim_elapsed,
                skipped.hash,
                skipped.events,
                skipped.sim_elapsed,
                stepped.replay_command()
            ));
        }
    }
    assert!(differences.is_empty(), "{name}: fast-forward changed the trace:\n  {}", differences.join("\n  "));
}

/// One test per scenario, so nextest spreads them over the cores; the coverage
/// test keeps the list equal to the registry.
macro_rules! equivalence_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                same_hash_with_and_without_fast_forward($name);
            }
        )*
        const COVERED: &[&str] = &[$($name),*];
    };
}

equivalence_tests! {
    heartbeat => "heartbeat",
    control_loop => "control-loop",
    tolaria_crash => "tolaria-crash",
    rollback_deadline => "rollback-deadline",
    wal_soak => "wal-soak",
    oona_bus => "oona-bus",
    oona_ledger => "oona-ledger",
    rc1_steady_train => "rc1-steady-train",
    rc1_rollback => "rc1-rollback",
    rc1_tamiyo_timeout => "rc1-tamiyo-timeout",
    kasmina_prefetch => "kasmina-prefetch",
    kasmina_prefetch_outage => "kasmina-prefetch-outage",
    kasmina_lifecycle => "kasmina-lifecycle",
    tamiyo_risk => "tamiyo-risk",
    nissa => "nissa",
    weatherlight => "weatherlight",
    tezzeret_forge => "tezzeret-forge",
    simic => "simic",
    morphogenesis => "morphogenesis",
}

/// The libtorch scenarios need libtorch and are compared per machine by
/// `tests/control_loop_tch.rs`; every other scenario must be listed above.
#[test]
fn every_registered_scenario_is_compared() {
    let missing: Vec<&str> = registry::names()
        .into_iter()
        .filter(|name| !COVERED.contains(name) && !registry::libtorch_only().contains(name))
        .collect();
    assert!(missing.is_empty(), "add these scenarios to equivalence_tests!: {missing:?}");
}

/// What the hosts of [`echo_world`] saw: the server, the sim time of each frame
/// it echoed; the client, per round, the sim time, which of two ready `select!`
/// branches tokio's seeded RNG picked, and whether the echo came back in time.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observations {
    echoed_at: Vec<u128>,
    rounds: Vec<(u128, bool, bool)>,
}

/// How the driver of [`echo_world`] moves time on.
#[derive(Debug, Clone, Copy)]
enum Driver {
    /// One tick per step, as stock turmoil does.
    Step,
    /// Fast-forward after each step up to the next fault, as `World` does.
    UpToNextFault,
    /// The plausible bug: fast-forward without looking at the fault schedule.
    IgnoringFaults,
}

/// A bare turmoil world with one echo server and one client that wakes every
/// 50 ms, tosses tokio's coin and sends one frame (20 ms deadline). The driver
/// holds the link's messages at 1 s and releases them at 1.5 s.
fn echo_world(driver: Driver) -> Observations {
    const HOLD_MS: u128 = 1_000;
    const RELEASE_MS: u128 = 1_500;
    let seen: Rc<RefCell<Observations>> = Rc::default();
    let mut sim = turmoil::Builder::new()
        .rng_seed(7)
        .enable_random_order()
        .epoch(std::time::UNIX_EPOCH)
        .simulation_duration(Duration::from_secs(10))
        .build();
    let log = Rc::clone(&seen);
    sim.host("server", move || {
        let log = Rc::clone(&log);
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 9)).await?;
            let (mut stream, _) = listener.accept().await?;
            let mut frame = [0_u8; 8];
            while stream.read_exact(&mut frame).await.is_ok() && stream.write_all(&frame).await.is_ok() {
                log.borrow_mut().echoed_at.push(turmoil::sim_elapsed().unwrap_or_default().as_millis());
            }
            Ok(())
        }
    });
    let log = Rc::clone(&seen);
    sim.client("client", async move {
        let mut stream = turmoil::net::TcpStream::connect(("server", 9)).await?;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let coin = tokio::select! { () = std::future::ready(()) => true, () = std::future::ready(()) => false };
            let round_trip = async {
                stream.write_all(&[1; 8]).await?;
                stream.read_exact(&mut [0; 8]).await
            };
            let echoed = matches!(tokio::time::timeout(Duration::from_millis(20), round_trip).await, Ok(Ok(_)));
            log.borrow_mut().rounds.push((turmoil::sim_elapsed().unwrap_or_default().as_millis(), coin, echoed));
        }
        Ok(())
    });
    let (mut held, mut released) = (false, false);
    loop {
        let now = sim.elapsed().as_millis();
        if !held && now >= HOLD_MS {
            sim.hold("server", "client");
            held = true;
        }
        if !released && now >= RELEASE_MS {
            sim.release("server", "client");
            released = true;
        }
        if sim.step().expect("the echo world runs") {
            break;
        }
        let next_fault = [(held, HOLD_MS), (released, RELEASE_MS)]
            .into_iter()
            .find_map(|(done, at)| (!done).then(|| Duration::from_millis(u64::try_from(at).unwrap_or(u64::MAX))));
        match driver {
            Driver::Step => {}
            Driver::UpToNextFault => _ = sim.fast_forward(next_fault.unwrap_or(Duration::MAX)),
            Driver::IgnoringFaults => _ = sim.fast_forward(Duration::MAX),
        }
    }
    seen.take()
}

/// The comparison can fail: stepping and a fast-forward bounded by the next
/// fault see the same frames, rounds, coins and echoes; a fast-forward that
/// overshoots the release (nothing is due while the link holds its messages)
/// releases them late, and the server sees them later.
#[test]
fn a_fast_forward_past_a_fault_is_caught() {
    let stepped = echo_world(Driver::Step);
    assert_eq!(stepped.rounds.len(), 40, "every round ran: {stepped:?}");
    assert!(stepped.rounds.iter().any(|&(_, _, echoed)| !echoed), "the hold cost some echoes: {stepped:?}");
    let bounded = echo_world(Driver::UpToNextFault);
    assert_eq!(bounded, stepped, "fast-forward up to the next fault changed what the client saw");
    assert_ne!(echo_world(Driver::IgnoringFaults), stepped, "a fast-forward past a fault went unnoticed");
}

/// Which of two tasks the Redis-like server of [`queue_world`] ran first in a
/// round: `true` when the task woken from inside the host (the local queue) ran
/// before the one woken by a network delivery (the injected queue).
fn queue_world(fast_forward: bool, skip_idle_hosts: bool) -> Vec<bool> {
    const ROUNDS: u64 = 200;
    let ran: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let mut sim = turmoil::Builder::new()
        .rng_seed(7)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1))
        .epoch(std::time::UNIX_EPOCH)
        .simulation_duration(Duration::from_secs(100))
        .build();
    sim.skip_idle_hosts(skip_idle_hosts);
    let log = Arc::clone(&ran);
    sim.host("server", move || {
        let log = Arc::clone(&log);
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 9)).await?;
            let (mut first, _) = listener.accept().await?;
            let (mut second, _) = listener.accept().await?;
            let notify = Arc::new(tokio::sync::Notify::new());
            let (waiter_notify, waiter_log, second_log) = (Arc::clone(&notify), Arc::clone(&log), Arc::clone(&log));
            // Like a blocked XREAD woken by another connection's XADD.
            let waiter = tokio::spawn(async move {
                loop {
                    waiter_notify.notified().await;
                    waiter_log.lock().expect("log").push("waiter");
                }
            });
            let writer = tokio::spawn(async move {
                while first.read_exact(&mut [0; 1]).await.is_ok() {
                    notify.notify_one();
                }
            });
            let reader = tokio::spawn(async move {
                while second.read_exact(&mut [0; 1]).await.is_ok() {
                    second_log.lock().expect("log").push("second");
                }
            });
            let _ = tokio::join!(waiter, writer, reader);
            Ok(())
        }
    });
    sim.client("client", async move {
        let mut first = turmoil::net::TcpStream::connect(("server", 9)).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut second = turmoil::net::TcpStream::connect(("server", 9)).await?;
        for round in 0..ROUNDS {
            // Idle gaps of every length from 3 to 31 ms, so that the rounds meet
            // the scheduler's tick count at every residue.
            tokio::time::sleep(Duration::from_millis(3 + round % 29)).await;
            first.write_all(&[1]).await?;
            second.write_all(&[2]).await?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    });
    while !sim.step().expect("the queue world runs") {
        if fast_forward {
            sim.fast_forward(Duration::MAX);
        }
    }
    let ran = ran.lock().expect("log");
    ran.chunks(2).map(|pair| pair.first() == Some(&"waiter")).collect()
}

/// Both segments of a round arrive in one tick and wake two server tasks from
/// outside the runtime (the injected queue); the first wakes a third from inside
/// (the local queue). Whether that third task or the second reader runs next is
/// tokio's choice by its scheduler tick count (remote first every 31st tick), so
/// a fast-forward that counted the ticks of skipped `block_on` calls wrongly
/// reorders some rounds. Stepping costs two ticks per idle tick (the sleep that
/// ends each `block_on` leaves a wake-up pending, which the next one's first park
/// consumes). With the first patch's count, one, 16 of the 200 rounds came out
/// reordered (rounds 6, 15, 27, …); both orders occur when stepping (the reader
/// first in 9 rounds), so the comparison has something to catch.
#[test]
fn an_idle_tick_counts_the_scheduler_ticks_of_stepping() {
    let stepped = queue_world(false, false);
    assert_eq!(stepped.len(), 200, "every round ran");
    assert!(stepped.contains(&true) && stepped.contains(&false), "both orders occur: {stepped:?}");
    for (fast_forward, skip_idle_hosts) in [(true, false), (false, true), (true, true)] {
        let skipped = queue_world(fast_forward, skip_idle_hosts);
        let reordered: Vec<usize> = (0..200).filter(|&round| stepped.get(round) != skipped.get(round)).collect();
        assert!(
            reordered.is_empty(),
            "fast-forward {fast_forward}, idle hosts skipped {skip_idle_hosts}: reordered the tasks of rounds {reordered:?}"
        );
    }
}
