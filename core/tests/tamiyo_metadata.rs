//! Blueprint metadata under `TAMIYO_METADATA_TIMEOUT_MS`: typed timeout, CRITICAL
//! `timeout_urza`, a breaker that opens after repeated timeouts and half-opens after
//! its cooldown. All in paused tokio time: the clock only moves when the code waits.

mod tamiyo_support;

use std::time::Duration;

use esper_core::breaker::{BreakerConfig, BreakerState};
use esper_core::leyline::{FieldReportOutcome, MessagePriority, TelemetryLevel};
use esper_core::tamiyo::metadata::{MetadataClient, MetadataError};
use esper_core::tamiyo::{BlueprintCatalog, TamiyoConfig, TamiyoTimeoutError};
use tamiyo_support::PLATEAU;
use tokio::time::Instant;

fn client(catalog: &BlueprintCatalog) -> MetadataClient<BlueprintCatalog> {
    let breaker = BreakerConfig { failure_threshold: 3, success_threshold: 1, open_ms: 100 };
    MetadataClient::new(catalog.clone(), Duration::from_millis(25), breaker, Duration::from_secs(300), 4)
}

#[tokio::test(start_paused = true)]
async fn slow_lookup_times_out_at_the_deadline_with_a_typed_error() {
    let catalog = BlueprintCatalog::karn();
    catalog.delay().set(Duration::from_millis(30));
    let mut client = client(&catalog);
    let started = Instant::now();
    let error = client.lookup("BP002").await.expect_err("30 ms > 25 ms");
    assert_eq!(started.elapsed(), Duration::from_millis(25), "gave up exactly at the deadline");
    let expected = TamiyoTimeoutError { operation: "urza_metadata", blueprint_id: "BP002".into(), timeout_ms: 25 };
    assert_eq!(error, MetadataError::Timeout(expected));
    assert_eq!(error.reason(), "timeout_urza");
    assert!(error.to_string().contains("timed out after 25 ms (TAMIYO_METADATA_TIMEOUT_MS)"), "{error}");
    catalog.delay().set(Duration::from_millis(24));
    let metadata = client.lookup("BP002").await.expect("24 ms fits");
    assert_eq!((metadata.name.as_str(), metadata.risk), ("residual_mlp_small", 0.1));
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_three_timeouts_half_opens_after_cooldown_and_closes_on_success() {
    let catalog = BlueprintCatalog::karn();
    catalog.delay().set(Duration::from_millis(100));
    let mut client = client(&catalog);
    for attempt in 1..=3 {
        assert!(matches!(client.lookup("BP001").await, Err(MetadataError::Timeout(_))), "attempt {attempt}");
    }
    assert_eq!(client.breaker_state(), BreakerState::Open);
    let started = Instant::now();
    assert!(matches!(client.lookup("BP001").await, Err(MetadataError::BreakerOpen { .. })));
    assert_eq!(started.elapsed(), Duration::ZERO, "an open breaker fails at once, without waiting on Urza");
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_eq!(client.breaker_state(), BreakerState::Open);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen, "100 ms after the third timeout");
    // A failed trial re-opens it at once; the next trial after another cooldown succeeds.
    assert!(matches!(client.lookup("BP001").await, Err(MetadataError::Timeout(_))));
    assert_eq!(client.breaker_state(), BreakerState::Open);
    tokio::time::advance(Duration::from_millis(100)).await;
    catalog.delay().set(Duration::ZERO);
    client.lookup("BP001").await.expect("Urza is back");
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    let counters = client.counters();
    assert_eq!((counters.timeouts, counters.breaker_rejections, client.breaker_opened_total()), (4, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn cache_answers_within_ttl_and_unknown_blueprints_do_not_trip_the_breaker() {
    let catalog = BlueprintCatalog::karn();
    let mut client = client(&catalog);
    client.lookup("BP003").await.expect("cached now");
    catalog.delay().set(Duration::from_secs(1));
    client.lookup("BP003").await.expect("served from the cache, not the slow catalog");
    assert_eq!(client.counters().cache_hits, 1);
    tokio::time::advance(Duration::from_secs(300)).await;
    assert!(matches!(client.lookup("BP003").await, Err(MetadataError::Timeout(_))), "expired after 5 min");
    catalog.delay().set(Duration::ZERO);
    for _ in 0..5 {
        let error = client.lookup("BP999").await.expect_err("not in the catalog");
        assert_eq!(error, MetadataError::Unknown { blueprint_id: "BP999".into() });
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed, "an answer, even 'unknown', is not a failure");
}

/// Through the whole service: a germination whose blueprint lookup times out is
/// paused with `timeout_urza`, a CRITICAL event goes out, the field report is
/// NEUTRAL; after three, the breaker answers for Urza.
#[tokio::test(start_paused = true)]
async fn service_pauses_on_urza_timeout_with_critical_event_and_neutral_report() {
    let catalog = BlueprintCatalog::karn();
    let config = TamiyoConfig {
        policy: esper_core::tamiyo::PolicyConfig { cooldown_steps: 1, ..Default::default() },
        ..Default::default()
    };
    let mut service = tamiyo_support::service_with(config, catalog.clone());
    catalog.delay().set(Duration::from_millis(40));
    let mut reasons = Vec::new();
    for packet in tamiyo_support::flat(0..36) {
        let command = service.evaluate(&packet).await;
        reasons.push(command.annotations.get("risk_reason").cloned().unwrap_or_default());
    }
    // Every step from the plateau on proposes a germination (a vetoed one starts no cooldown).
    assert_eq!(reasons[..PLATEAU], ["policy"; PLATEAU]);
    assert_eq!(reasons[PLATEAU..], ["timeout_urza"; 5]);
    assert_eq!(service.metadata_counters().timeouts, 3);
    assert_eq!(service.metadata_counters().breaker_rejections, 2);
    assert_eq!(service.metadata_breaker_state(), BreakerState::Open);
    let telemetry = service.drain_telemetry();
    let critical: Vec<_> = telemetry.iter().filter(|p| p.priority() == MessagePriority::Critical).collect();
    assert_eq!(critical.len(), 3, "one CRITICAL packet per timeout");
    let event = critical[0].events.iter().find(|e| e.description == "timeout_urza").expect("timeout_urza");
    assert_eq!(event.level, i32::from(TelemetryLevel::Critical));
    assert_eq!(event.attributes.get("timeout_ms").map(String::as_str), Some("25"));
    let reports = service.sink().reports();
    assert_eq!(reports.len(), 36, "one report per command");
    assert!(reports[PLATEAU..].iter().all(|r| r.outcome == i32::from(FieldReportOutcome::Neutral)));
}
