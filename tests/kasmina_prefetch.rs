//! Kasmina's prefetch burst: the sim bench matches Urza's latency model and
//! repeats per seed; a partitioned Urza means counted timeouts and the fallback
//! kernel, never a hang; the real profile runs over the embedded Redis and a
//! real `redis-server`.

mod support;

use esper_core::kasmina::telemetry;
use esper_core::leyline::encode_within_budget;
use esper_scenarios::real::real_profile::RedisTarget;
use esper_scenarios::sim::kasmina_prefetch::{BurstConfig, KasminaPrefetchScenario, run_real, run_sim};
use support::RealRedis;

#[test]
fn sim_burst_matches_the_modelled_latency_and_repeats_per_seed() {
    for seed in [0, 1, 2, 42] {
        let config = BurstConfig { seed, ..BurstConfig::default() };
        let first = run_sim(&config).expect("burst runs");
        let again = run_sim(&config).expect("burst runs");
        println!("{first}");
        assert_eq!(first, again, "seed {seed}: same seed, same latencies and trace");
        assert_eq!(first.latencies_ms.len(), 300);
        assert!((first.mean_ms - 40.0).abs() <= 1.0, "seed {seed}: mean {} ms", first.mean_ms);
        assert!((first.mean_ms - first.modelled_mean_ms).abs() <= 1.0, "seed {seed}: {first}");
        assert!(first.p95_ms < 53.5, "seed {seed}: p95 {} ms", first.p95_ms);
        assert_eq!((first.counters.ok, first.counters.timeout, first.counters.fallback), (300, 0, 0));
        first.check_acceptance().expect("within the model");
        let prefetch = first.prefetch;
        assert_eq!(prefetch.inflight_max, 6, "concurrency bounded at 6 and reached");
        assert_eq!((prefetch.inflight, prefetch.unmatched_answers, prefetch.cache_hits), (0, 0, 0));
        let metrics = prefetch.metrics();
        let ok = metrics.iter().find(|m| m.name == "kasmina.prefetch.requests_total" && m.attributes["status"] == "ok");
        assert_eq!(ok.map(|m| m.value), Some(300.0));
        let packets = telemetry::packets("kasmina-prefetch", metrics, Vec::new(), 0);
        assert!(packets.iter().all(|p| encode_within_budget(p).is_ok()));
        let latency = packets.iter().find_map(|p| p.metric("kasmina.prefetch.latency_ms"));
        assert!(latency.is_some_and(|ms| (ms - first.mean_ms).abs() < 1e-9), "{latency:?}");
        assert!(packets.iter().any(|p| p.metric("kasmina.cache.lock_wait_ms").is_some()));
    }
    let (a, b) = (run_sim(&BurstConfig { seed: 5, ..BurstConfig::default() }), run_sim(&BurstConfig::default()));
    assert_ne!(a.expect("runs").latencies_ms, b.expect("runs").latencies_ms, "seeds differ");
}

#[test]
fn acceptance_check_refuses_a_burst_off_the_model() {
    let mut report = run_sim(&BurstConfig { seed: 3, ..BurstConfig::default() }).expect("burst runs");
    report.modelled_mean_ms -= 1.5;
    let error = report.check_acceptance().expect_err("1.5 ms over the model");
    assert!(error.contains("off the model"), "{error}");
    report.modelled_mean_ms += 1.5;
    report.p95_ms = 53.5;
    assert!(report.check_acceptance().is_err(), "p95 at the bound");
}

#[test]
fn partitioned_urza_means_counted_timeouts_and_the_fallback_kernel() {
    let config = BurstConfig { requests: 24, concurrency: 6, timeout_ms: 200, ..BurstConfig::default() };
    let report = KasminaPrefetchScenario::urza_partitioned(config).run_burst(9).expect("the burst ends");
    println!("{report}");
    assert_eq!((report.counters.ok, report.counters.timeout, report.counters.error), (0, 24, 0));
    assert_eq!(report.counters.fallback, 24, "every timed-out request is served by the fallback kernel");
    assert!(report.latencies_ms.iter().all(|&ms| (200.0..=201.0).contains(&ms)), "{:?}", report.latencies_ms);
    // Four waves of six, each a 200 ms timeout, then at most one blocking read.
    assert!(report.elapsed_ms < 4.0 * 200.0 + 150.0, "took {} ms", report.elapsed_ms);
}

#[test]
fn real_profile_burst_runs_over_the_embedded_redis() {
    let config = BurstConfig { requests: 60, ..BurstConfig::default() };
    let report = run_real(&config, &RedisTarget::Embedded, &support::test_key()).expect("real burst");
    println!("{report}");
    assert_eq!(report.counters.ok, 60, "{report}");
    assert!(report.trace_hash.is_none());
    assert!((38.0..60.0).contains(&report.mean_ms), "wall-clock mean {} ms off the 35–60 ms envelope", report.mean_ms);
}

#[test]
fn real_profile_burst_runs_over_real_redis() {
    let Some(redis) = RealRedis::start("kasmina_prefetch") else { return };
    let config = BurstConfig { requests: 60, ..BurstConfig::default() };
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let target = RedisTarget::parse(&url).expect("a redis:// URL");
    let report = run_real(&config, &target, &support::test_key()).expect("real burst");
    println!("{report}");
    assert_eq!(report.counters.ok, 60, "{report}");
    assert!((38.0..60.0).contains(&report.mean_ms), "wall-clock mean {} ms", report.mean_ms);
}
