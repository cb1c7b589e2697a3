//! Drill speed: `control-loop` under swarm fault schedules, next to bare turmoil
//! carrying the same traffic, in the same run, on one thread.
//!
//! `esper` runs seeds the way `esper sweep --swarm` does (generated schedule,
//! real Tolaria/Tamiyo/Kasmina code, trace hashing, invariant checks, idle
//! fast-forward); `esper, stepping` runs the same seeds with fast-forward off
//! (every tick stepped, the same traces). The peer is
//! a plain turmoil simulation with the same physics that carries the control
//! loop's traffic without any Esper code: one ~300-byte signed-RPC-sized request
//! and reply every 5 ms (Tolaria consults Tamiyo once per 5 ms step), for as much
//! sim time as the esper run of the same seed took. Figures: sim seconds per
//! second on one core (CPU time of the measuring thread, `support/stopwatch.rs`), and what that means for a 60 s-of-sim drill in seeds per
//! second per core. The peer steps every tick, as stock turmoil 0.7.2 does: it
//! never calls the vendored `Sim::fast_forward`. That peer is the one issue 20's
//! goal was set against; a second, `traffic replayed` (`support/replay.rs`), runs
//! each drill's own recorded traffic in bare turmoil — its seven hosts, every
//! connection, the same bytes at the same sim times — recorded untimed.
//!
//! Usage: `cargo bench -p esper-scenarios --bench drill_speed -- [--seeds N] [--esper-only]`;
//! `ci/bench/run --drills`, and `ci/bench/run --callgrind` (`--esper-only`) for the breakdown.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::time::Duration;

#[path = "support/stopwatch.rs"]
mod stopwatch;
use stopwatch::Stopwatch;

#[path = "support/replay.rs"]
mod replay;
use replay::Traffic;

use esper_core::planted::Planted;
use esper_scenarios::drills::generate::draw;
use esper_scenarios::registry;
use esper_sim::{SimScenario, TraceMode, World, WorldConfig, run_scenario_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

const PORT: u16 = 7_300;
const FRAME: usize = 300;
const EVERY: Duration = Duration::from_millis(5);

fn main() {
    let seeds: u64 = std::env::args()
        .skip_while(|argument| argument != "--seeds")
        .nth(1)
        .map_or(100, |text| text.parse().expect("--seeds takes a number"));
    let scenario = registry::find("control-loop").expect("registered");
    let space = scenario.fault_space().expect("control-loop is drillable");
    let faults: usize = (0..seeds).map(|seed| draw(&space, seed, true).schedule.faults().len()).sum();
    let (sim_times, esper_wall) = drills(scenario, seeds, true);
    if std::env::args().any(|argument| argument == "--esper-only") {
        // For `ci/bench/run --callgrind`: the instruction breakdown of esper's drills.
        println!(
            "drill_speed: control-loop, {seeds} swarm seeds, esper only, {:.3} {}",
            esper_wall.as_secs_f64(),
            Stopwatch::unit()
        );
        return;
    }
    let (_, stepping_wall) = drills(scenario, seeds, false);
    let started = Stopwatch::start();
    for sim_time in &sim_times {
        bare_turmoil(*sim_time, &scenario.world_config());
    }
    let turmoil_wall = started.elapsed();
    let recorded =
        |seed| run_scenario_with(scenario, seed, draw(&space, seed, true).schedule, Planted::NONE, TraceMode::Full);
    let traffic: Vec<Traffic> = (0..seeds).map(|seed| Traffic::of(&recorded(seed))).collect();
    let started = Stopwatch::start();
    replay::replay_all(&traffic, &scenario.world_config());
    let replay_wall = started.elapsed();
    let simulated: Duration = sim_times.iter().sum();
    println!(
        "drill_speed: control-loop, {seeds} swarm seeds ({faults} faults), {:.1} s of sim time, one thread",
        simulated.as_secs_f64()
    );
    let speed = |wall: Duration| simulated.as_secs_f64() / wall.as_secs_f64();
    for (label, wall) in [
        ("esper drills (fast-forward)", esper_wall),
        ("esper drills, stepping every tick", stepping_wall),
        ("bare turmoil, same traffic", turmoil_wall),
        ("bare turmoil, traffic replayed", replay_wall),
    ] {
        println!(
            "  {label:<34} {:>8.1} sim s / {unit}   {:>6.2} seeds/s of a 60 s drill   ({:.3} {unit})",
            speed(wall),
            speed(wall) / 60.0,
            wall.as_secs_f64(),
            unit = Stopwatch::unit()
        );
    }
    println!("  ratio esper / bare turmoil: {:.2}x the speed", speed(esper_wall) / speed(turmoil_wall));
    println!(
        "  ratio esper / bare turmoil, traffic replayed: {:.2}x the speed",
        speed(esper_wall) / speed(replay_wall)
    );
    println!("  ratio fast-forward / stepping: {:.2}x the speed", speed(esper_wall) / speed(stepping_wall));
}

/// Runs seeds `0..seeds` as swarm drills, fast-forward on or off: each run's sim
/// time, and the wall time of them all.
fn drills(scenario: &dyn SimScenario, seeds: u64, fast_forward: bool) -> (Vec<Duration>, Duration) {
    let space = scenario.fault_space().expect("control-loop is drillable");
    let config = WorldConfig { fast_forward, ..scenario.world_config() };
    let mut sim_times = Vec::new();
    let started = Stopwatch::start();
    for seed in 0..seeds {
        let mut world = World::with_config(seed, draw(&space, seed, true).schedule, &config);
        scenario.populate(&mut world);
        let report = world.run(scenario.name(), TraceMode::Hash);
        assert!(report.passed(), "{report}");
        sim_times.push(report.sim_elapsed);
    }
    (sim_times, started.elapsed())
}

/// A request, its reply, then 5 ms of step time, until `duration` of sim time has passed.
fn bare_turmoil(duration: Duration, physics: &WorldConfig) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(0)
        .enable_random_order()
        .epoch(std::time::UNIX_EPOCH)
        .tick_duration(physics.tick)
        .simulation_duration(duration + Duration::from_secs(1))
        .min_message_latency(physics.min_latency)
        .max_message_latency(physics.max_latency)
        .build();
    sim.host("tamiyo", || async {
        let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut frame = [0_u8; FRAME];
                while stream.read_exact(&mut frame).await.is_ok() && stream.write_all(&frame).await.is_ok() {}
            });
        }
    });
    sim.client("tolaria", async move {
        let mut stream = TcpStream::connect(("tamiyo", PORT)).await?;
        let mut frame = [7_u8; FRAME];
        while turmoil::sim_elapsed().unwrap_or_default() < duration {
            tokio::time::sleep(EVERY).await;
            stream.write_all(&frame).await?;
            stream.read_exact(&mut frame).await?;
        }
        Ok(())
    });
    sim.run().expect("bare turmoil run");
}
