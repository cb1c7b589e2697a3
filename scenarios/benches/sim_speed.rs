//! Simulation speed of the sparse scenarios, next to bare turmoil carrying the
//! same traffic and to the same world stepping every tick, in the same run.
//!
//! For each sparse scenario (`heartbeat`, `weatherlight`, `kasmina-prefetch`,
//! `tezzeret-forge`) `esper` runs the registered scenario (trace hashing, fault
//! executor, RNG tree and all) with idle fast-forward on, as every run does, and
//! `esper, stepping` the same seeds with it off (turmoil's tick-by-tick stepping;
//! the same trace, `tests/fast_forward_equivalence.rs`). For `heartbeat` the peer
//! `turmoil` is a plain turmoil simulation with the same physics, the same
//! partition schedule and the same beat timings, written directly against
//! turmoil's sockets with no Esper code at all (stock stepping: it never calls
//! the vendored `Sim::fast_forward`). For the other three the peer is the
//! scenario's own traffic replayed in bare turmoil (`support/replay.rs`): the
//! same hosts, connections and bytes at the same sim times, no Esper code; the
//! recording run is not timed. Figures: simulated seconds per
//! second on one core (CPU time of the measuring thread, `support/stopwatch.rs`),
//! and seeds per second.
//!
//! Usage: `cargo bench -p esper-scenarios --bench sim_speed -- [--seeds N] [--only esper|turmoil] [--scenario NAME]`.
//! `ci/bench/run` runs it, and again under callgrind (`--only`: heartbeat esper
//! vs bare turmoil for repeatable instruction counts, then each sparse scenario
//! alone, `--only esper --scenario NAME`, for its breakdown).

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::time::Duration;

#[path = "support/stopwatch.rs"]
mod stopwatch;
use stopwatch::Stopwatch;

#[path = "support/replay.rs"]
mod replay;
use replay::Traffic;

use esper_core::weatherlight::heartbeat::HeartbeatConfig;
use esper_scenarios::registry;
use esper_scenarios::sim::heartbeat::HeartbeatScenario;
use esper_sim::{Fault, RngTree, SimScenario, TraceMode, World, WorldConfig, run_scenario};
use rand::{Rng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

/// The scenarios whose time is mostly idle: Goal 1 of issue 20 (≥ 1,000 sim s
/// per wall s with fast-forward).
const SPARSE: [&str; 4] = ["heartbeat", "weatherlight", "kasmina-prefetch", "tezzeret-forge"];

struct Measurement {
    seeds: u64,
    simulated: Duration,
    wall: Duration,
}

impl Measurement {
    fn speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64()
    }

    fn seeds_per_second(&self) -> f64 {
        self.seeds as f64 / self.wall.as_secs_f64()
    }
}

/// `seeds` runs of `scenario` under its own schedules, fast-forward on or off.
fn measure_esper(scenario: &dyn SimScenario, seeds: u64, fast_forward: bool) -> Measurement {
    let started = Stopwatch::start();
    let mut simulated = Duration::ZERO;
    for seed in 0..seeds {
        let schedule = scenario.schedule(&RngTree::new(seed).child("faults"));
        let config = WorldConfig { fast_forward, ..scenario.world_config() };
        let mut world = World::with_config(seed, schedule, &config);
        scenario.populate(&mut world);
        let report = world.run(scenario.name(), TraceMode::Hash);
        assert!(report.passed(), "{report}");
        simulated += report.sim_elapsed;
    }
    Measurement { seeds, simulated, wall: started.elapsed() }
}

fn measure_turmoil(seeds: u64) -> Measurement {
    let started = Stopwatch::start();
    let mut simulated = Duration::ZERO;
    for seed in 0..seeds {
        simulated += bare_turmoil_run(seed);
    }
    Measurement { seeds, simulated, wall: started.elapsed() }
}

/// `seeds` runs of `scenario`'s recorded traffic in bare turmoil (recorded untimed).
fn measure_replay(scenario: &dyn SimScenario, seeds: u64) -> Measurement {
    let recorded = |seed| run_scenario(scenario, seed, TraceMode::Full);
    let traffic: Vec<Traffic> = (0..seeds).map(|seed| Traffic::of(&recorded(seed))).collect();
    let started = Stopwatch::start();
    let simulated = replay::replay_all(&traffic, &scenario.world_config());
    Measurement { seeds, simulated, wall: started.elapsed() }
}

/// One heartbeat run in plain turmoil: same builder settings, same schedule, same
/// jitter stream, same 8-byte beats with the same deadlines.
fn bare_turmoil_run(seed: u64) -> Duration {
    let tree = RngTree::new(seed);
    let schedule = HeartbeatScenario::new().schedule(&tree.child("faults"));
    let physics = WorldConfig::default();
    let config = HeartbeatConfig::default();
    let mut sim = turmoil::Builder::new()
        .rng_seed(tree.child("world").stream("turmoil").next_u64())
        .enable_random_order()
        .epoch(std::time::UNIX_EPOCH)
        .tick_duration(physics.tick)
        .simulation_duration(physics.duration)
        .min_message_latency(physics.min_latency)
        .max_message_latency(physics.max_latency)
        .build();
    let port = config.port;
    sim.host("tolaria", move || async move {
        let listener = TcpListener::bind(("0.0.0.0", port)).await?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut frame = [0_u8; 8];
                while stream.read_exact(&mut frame).await.is_ok() && stream.write_all(&frame).await.is_ok() {}
            });
        }
    });
    let mut jitter = tree.stream("weatherlight.heartbeat");
    sim.client("weatherlight", async move {
        let deadline = Duration::from_millis(config.timeout_ms);
        let mut connection: Option<TcpStream> = None;
        for seq in 0..u64::from(config.beats) {
            tokio::time::sleep(Duration::from_millis(config.interval_ms + jitter.random_range(0..=config.jitter_ms)))
                .await;
            if connection.is_none() {
                connection = tokio::time::timeout(deadline, TcpStream::connect(("tolaria", port)))
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let Some(stream) = connection.as_mut() else { continue };
            let round_trip = async {
                stream.write_all(&seq.to_le_bytes()).await?;
                stream.read_exact(&mut [0_u8; 8]).await
            };
            if !matches!(tokio::time::timeout(deadline, round_trip).await, Ok(Ok(_))) {
                connection = None;
            }
        }
        Ok(())
    });
    let mut faults = schedule.faults().iter().peekable();
    loop {
        while let Some(scheduled) = faults.next_if(|f| u128::from(f.at_ms) <= sim.elapsed().as_millis()) {
            match &scheduled.fault {
                Fault::Partition { a, b } => sim.partition(a.as_str(), b.as_str()),
                Fault::Repair { a, b } => sim.repair(a.as_str(), b.as_str()),
                other => panic!("the heartbeat schedule holds only partitions and repairs, not {other}"),
            }
        }
        if sim.step().expect("bare turmoil run") {
            return sim.elapsed();
        }
    }
}

fn argument(name: &str) -> Option<String> {
    let arguments: Vec<String> = std::env::args().collect();
    arguments.iter().position(|argument| argument == name).and_then(|index| arguments.get(index + 1).cloned())
}

fn print(label: &str, measurement: &Measurement) {
    let unit = Stopwatch::unit();
    println!(
        "  {label:<34} {:>9.1} sim s / {unit}  {:>8.1} seeds/s   ({:.1} sim s in {:.3} s)",
        measurement.speed(),
        measurement.seeds_per_second(),
        measurement.simulated.as_secs_f64(),
        measurement.wall.as_secs_f64()
    );
    if measurement.wall < Duration::from_millis(500) {
        println!("  {:<34} (under 0.5 s on a 10 ms clock: raise --seeds for a figure)", "");
    }
}

fn main() {
    let seeds: u64 = argument("--seeds").map_or(50, |text| text.parse().expect("--seeds takes a number"));
    let heartbeat = HeartbeatScenario::new();
    match argument("--only").as_deref() {
        Some("esper") => {
            let name = argument("--scenario").unwrap_or_else(|| heartbeat.name().to_owned());
            let scenario = registry::find(&name).unwrap_or_else(|error| panic!("--scenario: {error}"));
            print(&format!("{name}: esper"), &measure_esper(scenario, seeds, true));
        }
        Some("turmoil") => print("heartbeat: bare turmoil", &measure_turmoil(seeds)),
        Some(other) => panic!("--only takes esper or turmoil, not {other}"),
        None => {
            println!("sim_speed: sparse scenarios, {seeds} seeds each, one thread");
            for name in SPARSE {
                let scenario = registry::find(name).expect("registered");
                let esper = measure_esper(scenario, seeds, true);
                let stepping = measure_esper(scenario, seeds, false);
                println!("{name}");
                print("esper (fast-forward)", &esper);
                print("esper, stepping every tick", &stepping);
                println!("  {:<34} {:>9.2}x", "fast-forward / stepping", esper.speed() / stepping.speed());
                // heartbeat's peer is written by hand and also cuts the links its
                // partitions cut; the others replay the run's recorded traffic.
                let (label, turmoil) = if name == heartbeat.name() {
                    ("bare turmoil, same traffic", measure_turmoil(seeds))
                } else {
                    ("bare turmoil, traffic replayed", measure_replay(scenario, seeds))
                };
                print(label, &turmoil);
                println!("  {:<34} {:>9.2}x", "esper / bare turmoil", esper.speed() / turmoil.speed());
            }
        }
    }
}
