//! How a run's failure becomes a typed [`Violation`]: a host's own violation
//! comes back unchanged, and the world names the rest — a panic, an exhausted
//! sim-time budget, a host's plain error, an unusable schedule — by what it
//! knows, never by reading a message.

use std::time::Duration;

use esper_sim::{Fault, FaultSchedule, Invariant, Outcome, ScheduledFault, TraceMode, Violation, World, WorldConfig};

fn outcome_of<F>(client: F) -> Outcome
where
    F: Future<Output = turmoil::Result> + 'static,
{
    let config = WorldConfig { duration: Duration::from_secs(1), ..WorldConfig::default() };
    let mut world = World::with_config(1, FaultSchedule::default(), &config);
    world.client("checker", client);
    world.run("violations", TraceMode::Hash).outcome
}

fn failed(outcome: Outcome) -> Violation {
    match outcome {
        Outcome::Failed { violation } => violation,
        Outcome::Passed => panic!("the run should have failed"),
    }
}

#[test]
fn a_hosts_violation_reaches_the_report_unchanged() {
    let violation = Invariant::RollbackRestores.violated("epoch 3 rolled back, model differs");
    let returned = violation.clone();
    let outcome = outcome_of(async move { Err(returned.into()) });
    assert_eq!(failed(outcome), violation);
}

#[test]
fn a_hosts_plain_error_is_a_host_error_not_a_scenario_check() {
    // Even text that looks like a violation is not read as one.
    let outcome = outcome_of(async { Err("invariant oona-ledger violated: lookalike".into()) });
    let violation = failed(outcome);
    assert_eq!(violation.invariant, Invariant::HostError);
    assert_eq!(violation.detail, "invariant oona-ledger violated: lookalike");
}

#[test]
fn a_panicking_host_breaks_no_panic() {
    let outcome = outcome_of(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        panic!("boom on a rare path");
    });
    // The detail is tokio's ("a spawned task panicked …"): turmoil's LocalSet
    // re-raises a host's panic with its own payload; the host's message is
    // what the panic hook printed to stderr.
    assert_eq!(failed(outcome).invariant, Invariant::NoPanic);
}

#[test]
fn a_loop_that_logs_without_ever_awaiting_is_a_livelock_not_a_hang() {
    // The sweep a mutant of Kasmina's prefetch broke: a deadline already past,
    // a finish that removes nothing, so the loop never reaches an await.
    let outcome = outcome_of(async {
        tokio::time::sleep(Duration::from_millis(7)).await;
        for _ in 0_u64.. {
            tracing::warn!(request_id = "k-1", "request timed out");
        }
        Ok(())
    });
    let violation = failed(outcome);
    assert_eq!(violation.invariant, Invariant::Liveness, "{violation}");
    assert!(violation.detail.starts_with("livelock: 100001 events at sim time 0.007"), "{violation}");
    assert!(violation.detail.contains("request timed out"), "{violation}");
}

#[test]
fn a_burst_of_events_at_one_instant_under_the_limit_passes() {
    let burst = esper_sim::trace::EVENTS_PER_INSTANT_LIMIT - 10;
    let config = WorldConfig { duration: Duration::from_secs(1), ..WorldConfig::default() };
    let mut world = World::with_config(1, FaultSchedule::default(), &config);
    world.client("checker", async move {
        tokio::time::sleep(Duration::from_millis(7)).await;
        for request in 0..burst {
            tracing::debug!(request, "issued");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        for request in 0..burst {
            tracing::debug!(request, "issued");
        }
        Ok(())
    });
    let report = world.run("violations", TraceMode::Hash);
    assert_eq!(report.outcome, Outcome::Passed);
    assert_eq!(report.events, 2 * burst, "each burst is one instant's events, all recorded");
}

#[test]
fn a_run_past_its_sim_time_budget_breaks_liveness() {
    let outcome = outcome_of(async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    });
    assert_eq!(failed(outcome).invariant, Invariant::Liveness);
}

#[test]
fn an_unusable_schedule_is_named_as_such() {
    let fault = ScheduledFault { at_ms: 1, fault: Fault::Crash { host: "nobody".to_owned() } };
    let mut world = World::new(1, FaultSchedule::new(vec![fault]));
    world.client("checker", async { Ok(()) });
    let violation = failed(world.run("violations", TraceMode::Hash).outcome);
    assert_eq!(violation.invariant, Invariant::InvalidSchedule, "{violation}");
}

/// Each fault target the world lacks is named before the run: a missing host, a
/// client crashed, and a disk, Redis, device or clock the host does not have.
#[test]
fn a_fault_on_a_target_the_world_lacks_is_refused_with_its_reason() {
    let host = || "checker".to_owned();
    let cases = [
        (Fault::Stall { host: "nobody".to_owned() }, "which this world does not have"),
        (Fault::Restart { host: host() }, "a client host that cannot restart"),
        (Fault::DiskSlowReads { host: host(), extra_ms: 5 }, "which has no disk"),
        (Fault::RedisOom { host: host() }, "which runs none"),
        (Fault::DeviceHeal { host: host() }, "which trains on none"),
        (Fault::ClockJump { host: host(), by_ms: 5 }, "which reads none"),
    ];
    for (fault, reason) in cases {
        let mut world = World::new(1, FaultSchedule::new(vec![ScheduledFault { at_ms: 1, fault: fault.clone() }]));
        world.client("checker", async { Ok(()) });
        let violation = failed(world.run("violations", TraceMode::Hash).outcome);
        assert_eq!(violation.invariant, Invariant::InvalidSchedule, "{fault}: {violation}");
        assert!(violation.detail.contains(reason), "{fault}: {violation}");
    }
}

/// A world whose client logs two warnings with target `wal.test`, and a log
/// check on that target that wants `reason` spelled `torn_payload`.
fn logged(reason: &'static str) -> Outcome {
    let mut world = World::with_config(1, FaultSchedule::default(), &WorldConfig::default());
    world.client("store", async move {
        tracing::warn!(target: "wal.test", reason, "damaged log truncated");
        tracing::warn!(target: "wal.other", reason = "anything", "not watched");
        Ok(())
    });
    world.check_log("wal.test", Invariant::WalAcknowledged, |lines| match lines {
        [line] if line.ends_with("wal.test: message=damaged log truncated reason=\"torn_payload\"") => Ok(()),
        _ => Err(format!("expected one cut naming torn_payload, logged {lines:?}")),
    });
    world.run("log-check", TraceMode::Hash).outcome
}

#[test]
fn a_log_check_reads_its_targets_lines_after_the_run_and_fails_it_as_its_invariant() {
    assert_eq!(logged("torn_payload"), Outcome::Passed);
    let violation = failed(logged("xyzzy"));
    assert_eq!(violation.invariant, Invariant::WalAcknowledged);
    assert!(violation.detail.contains("reason=\\\"xyzzy\\\""), "{}", violation.detail);
}
