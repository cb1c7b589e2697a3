//! Nissa's ingest rate next to a bare Oona consumer of the same stream, in the
//! same run: what Nissa's own work (decode, metrics, alert evaluation, SLO
//! samples, documents) costs on top of reading and verifying the frames.
//!
//! A publisher fills `oona.telemetry` with N Tolaria epoch packets (6 metrics
//! each, as `tolaria::metrics::epoch_packets` builds them) on the embedded Redis
//! (`esper redis`, the simulated server over tokio TCP). Then, each in its own
//! consumer group over the same N entries:
//! (a) a bare `OonaClient` consumer whose handler does nothing;
//! (b) Nissa's ingest loop (documents to the in-memory index).
//! Finally it times rendering `/metrics` and `/metrics/summary` with that state.
//!
//! Usage: `cargo bench -p esper-scenarios --bench nissa_ingest -- [--packets N]`.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::time::{Duration, Instant};

use esper_core::clock::UnixClock;
use esper_core::leyline::{BusEnvelope, SigningKey, VerifyPolicy};
use esper_core::net::TokioConnector;
use esper_core::nissa::index::MemoryIndex;
use esper_core::nissa::{self, Nissa, NissaConfig, run_ingest};
use esper_core::oona::{ClientParts, Handled, OonaClient, PublishOutcome, StreamConfig};
use esper_core::planted::Planted;
use esper_core::tolaria::metrics::{EpochFigures, TolariaCounters, epoch_packets};
use esper_scenarios::real::real_profile::wall_clock_ms;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type Bus = OonaClient<TokioConnector, ChaCha8Rng>;

fn bus(port: u16, group: &str) -> Bus {
    let parts = ClientParts {
        key: SigningKey::new(b"nissa-bench".to_vec()).expect("non-empty"),
        verify: VerifyPolicy { freshness_window_ms: 3_600_000, max_frames_per_s: 1_000, ..VerifyPolicy::default() },
        clock: UnixClock::anchored_at(wall_clock_ms()),
        rng: ChaCha8Rng::seed_from_u64(7),
    };
    let config = StreamConfig {
        group: group.to_owned(),
        consumer: group.to_owned(),
        ..nissa::bus_config(StreamConfig::default())
    };
    OonaClient::new(TokioConnector, "127.0.0.1", port, config, parts)
}

async fn fill(port: u16, packets: u64) {
    let mut publisher = bus(port, "publisher");
    for epoch in 0..packets {
        let figures = EpochFigures {
            epoch: u32::try_from(epoch).unwrap_or(u32::MAX),
            loss: 1.0 / (1.0 + epoch as f32),
            latency_ms: 4.0 + (epoch % 7) as f64,
            seeds_active: 1,
            conservative: false,
            latency_objective_ms: 8.0,
            restore_latency_ms: None,
            rollback_deadline_ms: 250.0,
        };
        let packets = epoch_packets(&figures, &TolariaCounters::default(), Vec::new(), wall_clock_ms(), Planted::NONE)
            .expect("fits");
        let envelope = BusEnvelope::wrap(&packets[0], packets[0].priority());
        let outcome = publisher.publish(&envelope).await.expect("Redis takes it");
        assert!(matches!(outcome, PublishOutcome::Published { .. }), "{outcome:?}");
    }
}

async fn bare_consumer(port: u16, packets: u64) -> Duration {
    let mut consumer = bus(port, "peer");
    let stream = consumer.config().telemetry_stream.clone();
    consumer.ensure_consumer_group(&stream).await.expect("group");
    let started = Instant::now();
    let mut seen = 0_u64;
    while seen < packets {
        let round = consumer.consume_with(&stream, |_| Handled::Done).await.expect("round");
        seen += u64::from(round.handled);
    }
    started.elapsed()
}

async fn nissa_ingest(port: u16, packets: u64) -> (Duration, Nissa) {
    let nissa = Nissa::new(NissaConfig::default(), UnixClock::anchored_at(wall_clock_ms())).expect("valid rules");
    let router = nissa.index_router::<MemoryIndex>(None);
    let ingest = run_ingest(nissa.clone(), bus(port, "nissa"), router, ChaCha8Rng::seed_from_u64(8));
    let started = Instant::now();
    let watch = async {
        while nissa.liveness().ingest.telemetry_packets < packets {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        started.elapsed()
    };
    tokio::select! {
        never = ingest => match never {},
        took = watch => (took, nissa),
    }
}

fn mean_ms(runs: u32, mut work: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..runs {
        work();
    }
    started.elapsed().as_secs_f64() * 1_000.0 / f64::from(runs)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let packets: u64 =
        args.windows(2).find(|pair| pair[0] == "--packets").and_then(|pair| pair[1].parse().ok()).unwrap_or(20_000);
    let port = esper_scenarios::real::embedded_redis::start_embedded().expect("the embedded Redis starts");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        fill(port, packets).await;
        let bare = bare_consumer(port, packets).await;
        let (took, nissa) = nissa_ingest(port, packets).await;
        let rate = |took: Duration| packets as f64 / took.as_secs_f64();
        println!("{packets} Tolaria epoch packets (6 metrics each) on the embedded Redis");
        println!("(a) bare Oona consumer (verify, no-op handler): {:>9.0} packets/s", rate(bare));
        println!("(b) Nissa ingest loop:                          {:>9.0} packets/s", rate(took));
        println!("    ratio Nissa / bare consumer: {:.2}x", rate(took) / rate(bare));
        let render = mean_ms(50, || drop(nissa.render_metrics()));
        let bytes = nissa.render_metrics().len();
        let summary = mean_ms(50, || drop(nissa.summary()));
        println!("/metrics render: {render:.3} ms ({bytes} bytes); /metrics/summary: {summary:.3} ms");
    });
}
