//! Simulation speed of the first scenario, next to bare turmoil carrying the same
//! traffic in the same run.
//!
//! `esper` runs the registered `heartbeat` scenario (trace hashing, fault executor,
//! RNG tree and all). `turmoil` is the peer: a plain turmoil simulation with the
//! same physics, the same partition schedule and the same beat timings, written
//! directly against turmoil's sockets with no Esper code at all. The figure of
//! merit is simulated seconds per wall-clock second on one core, and the ratio
//! between the two says what Esper's world costs on top of turmoil.
//!
//! Usage: `cargo bench -p esper-scenarios --bench sim_speed -- [--seeds N] [--only esper|turmoil]`.
//! `ci/bench/run` runs it, and again under callgrind for repeatable instruction counts.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::time::{Duration, Instant};

use esper_core::weatherlight::heartbeat::HeartbeatConfig;
use esper_scenarios::heartbeat::HeartbeatScenario;
use esper_sim::{Fault, RngTree, SimScenario, TraceMode, WorldConfig, run_scenario};
use rand::{Rng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

struct Measurement {
    simulated: Duration,
    wall: Duration,
}

impl Measurement {
    fn speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64()
    }
}

fn measure_esper(seeds: u64) -> Measurement {
    let scenario = HeartbeatScenario::new();
    let started = Instant::now();
    let mut simulated = Duration::ZERO;
    for seed in 0..seeds {
        let report = run_scenario(&scenario, seed, TraceMode::Hash);
        assert!(report.passed(), "{report}");
        simulated += report.sim_elapsed;
    }
    Measurement { simulated, wall: started.elapsed() }
}

fn measure_turmoil(seeds: u64) -> Measurement {
    let started = Instant::now();
    let mut simulated = Duration::ZERO;
    for seed in 0..seeds {
        simulated += bare_turmoil_run(seed);
    }
    Measurement { simulated, wall: started.elapsed() }
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

fn main() {
    let seeds: u64 = argument("--seeds").map_or(50, |text| text.parse().expect("--seeds takes a number"));
    let only = argument("--only");
    println!("sim_speed: heartbeat scenario, {seeds} seeds, one thread");
    let run = |name: &str| only.as_deref().is_none_or(|wanted| wanted == name);
    let esper = run("esper").then(|| measure_esper(seeds));
    let turmoil = run("turmoil").then(|| measure_turmoil(seeds));
    for (label, measurement) in [("esper world (trace hash, faults)", &esper), ("bare turmoil, same traffic", &turmoil)]
    {
        if let Some(measurement) = measurement {
            println!(
                "  {label:<34} {:>8.1} sim s / wall s   ({:.1} sim s in {:.3} s)",
                measurement.speed(),
                measurement.simulated.as_secs_f64(),
                measurement.wall.as_secs_f64()
            );
        }
    }
    if let (Some(esper), Some(turmoil)) = (esper, turmoil) {
        println!("  {:<34} {:>8.2}x", "speed ratio esper / bare turmoil", esper.speed() / turmoil.speed());
    }
}
