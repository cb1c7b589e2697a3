//! `kasmina-prefetch-outage`: Kasmina prefetches through an Urza outage.
//!
//! The bench (`kasmina-prefetch`) has no fault, so none of the coordinator's
//! unhappy paths runs in it: no request times out or errs, no answer comes late,
//! no kernel is served from the cache. Here Urza holds twelve kernels and
//! Kasmina asks, in a seeded order with repeats, for sixteen (four Urza lacks),
//! while Urza is cut off from Redis for a drawn window that starts during the
//! first batch and outlasts the request timeout. Once the link is back and Urza
//! has answered its backlog, Kasmina asks for all sixteen again.
//!
//! Checked, besides the recount of the reported metrics over both batches
//! (`telemetry-complete`): every request ends with the kernel its status says
//! (the requested one when ok, the fallback otherwise) and a blueprint Urza
//! lacks is never ok; after the outage every kernel Urza holds is served and
//! every other errs; late answers are counted as unmatched, at least one and at
//! most one per timed-out request; the cache hits are the requests served from
//! the cache (`scenario`). The outage must bite: a first batch without a timeout fails.
//! A third batch, of the four lacked blueprints, follows a drawn number of
//! unreadable answers put on the reply stream (`unreadable.rs`): Kasmina must
//! count exactly those. Last, with Kasmina itself cut off from Redis, a new
//! coordinator must refuse to start: preparing its reply stream is its first
//! contact with Redis, and the real profile's `esper kasmina-prefetch` exits 1
//! on that refusal rather than serve every request the fallback. Once the link
//! is back, the same coordinator starts.

use std::time::Duration;

use esper_core::kasmina::{KernelSource, PrefetchCoordinator, PrefetchCounters, PrefetchOutcome, PrefetchStatus};
use esper_core::oona::OonaError;
use esper_sim::{Fault, FaultSchedule, Invariant, RngTree, ScheduledFault, SimScenario, Violation, World, WorldConfig};
use rand::Rng;

use super::sim::{KASMINA, REDIS, URZA, WARM_UP, burst_world, client, serve_urza};
use super::{BurstConfig, recount, unreadable};
use crate::sim::control_loop::hosts::sim_clock;

trace_target!("kasmina_prefetch::outage");

/// Kernels Urza holds: `bench-0000` to `bench-0011`.
const HELD: usize = 12;
/// Blueprints Kasmina asks for that Urza lacks.
const LACKED: usize = 4;
/// Requests in the first batch, drawn from the held and lacked blueprints.
const FIRST_BATCH: usize = 48;
/// The second batch starts this long after the world starts: after the latest
/// repair the schedule can draw (2.6 s) with time for Urza to reconnect and
/// answer its backlog.
const SECOND_BATCH_AT: Duration = Duration::from_secs(6);
/// Kasmina is cut off from Redis from here (long after the third batch)...
const KASMINA_CUT_AT: Duration = Duration::from_secs(20);
/// ...to here: the refusal (three connect attempts, about 130 ms) comes well
/// inside the cut.
const KASMINA_REPAIR_AT: Duration = Duration::from_secs(21);

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct KasminaPrefetchOutageScenario;

impl KasminaPrefetchOutageScenario {
    /// The burst's shape: Urza's bench latency (40 ± 8 ms), four requests in
    /// flight, and a timeout (250 ms) the drawn outage always outlasts.
    const fn config(seed: u64) -> BurstConfig {
        BurstConfig { seed, requests: HELD, concurrency: 4, ready_latency_ms: 40, jitter_ms: 8, timeout_ms: 250 }
    }
}

/// The blueprints Kasmina may ask for: the held ones (named as the bench library
/// names them), then the lacked ones.
fn known_and_lacked() -> Vec<String> {
    let held = (0..HELD).map(|n| format!("bench-{n:04}"));
    held.chain((0..LACKED).map(|n| format!("lacked-{n:02}"))).collect()
}

impl SimScenario for KasminaPrefetchOutageScenario {
    fn name(&self) -> &'static str {
        "kasmina-prefetch-outage"
    }

    fn summary(&self) -> &'static str {
        "Kasmina prefetches 48 then 16 kernels while Urza is cut off from Redis for a drawn window: \
         timeouts and errors get the fallback, late answers are counted, every held kernel is served after; \
         then 4 behind unreadable answers, each counted"
    }

    fn world_config(&self) -> WorldConfig {
        burst_world(Duration::from_secs(30))
    }

    /// Urza–Redis cut from 200 ms before the first batch to 100 ms into it (it
    /// takes about 200 ms: sixteen distinct kernels, the rest cache hits), for
    /// 500–2,000 ms: longer than a request's timeout, so a request in flight
    /// when the cut starts, or the first one sent after, cannot be answered in time.
    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("outage");
        let warm_up_ms = WARM_UP.as_millis() as u64;
        let start_ms = warm_up_ms - 200 + draws.random_range(0..300);
        let end_ms = start_ms + draws.random_range(500..2_000);
        let link = || (URZA.to_owned(), REDIS.to_owned());
        let (a, b) = link();
        let cut = ScheduledFault { at_ms: start_ms, fault: Fault::Partition { a, b } };
        let (a, b) = link();
        let repair = ScheduledFault { at_ms: end_ms, fault: Fault::Repair { a, b } };
        let kasmina = || (KASMINA.to_owned(), REDIS.to_owned());
        let ((a, b), (c, d)) = (kasmina(), kasmina());
        let at_ms = |at: Duration| at.as_millis() as u64;
        let kasmina_cut = ScheduledFault { at_ms: at_ms(KASMINA_CUT_AT), fault: Fault::Partition { a, b } };
        let kasmina_repair = ScheduledFault { at_ms: at_ms(KASMINA_REPAIR_AT), fault: Fault::Repair { a: c, b: d } };
        FaultSchedule::new(vec![cut, repair, kasmina_cut, kasmina_repair])
    }

    fn populate(&self, world: &mut World) {
        let config = Self::config(world.seed());
        serve_urza(world, config);
        let rng = world.rng().child(KASMINA);
        let pool = known_and_lacked();
        let mut order = rng.stream("blueprints");
        let first: Vec<String> = (0..FIRST_BATCH).map(|_| pool[order.random_range(0..pool.len())].clone()).collect();
        world.client(KASMINA, async move {
            let origin = tokio::time::Instant::now();
            let (requests, replies) =
                (client(KASMINA, rng.stream("bus.requests"))?, client(KASMINA, rng.stream("bus.replies"))?);
            tokio::time::sleep(WARM_UP).await;
            let mut coordinator = PrefetchCoordinator::new(requests, replies, config.prefetch(KASMINA), sim_clock());
            coordinator.prepare().await?;
            let during = coordinator.prefetch(&first).await;
            tokio::time::sleep_until(origin + SECOND_BATCH_AT).await;
            let after = coordinator.prefetch(&pool).await;
            let before_third = coordinator.counters();
            check(&during, &after, &before_third)?;
            let sent = unreadable::publish(&mut rng.stream("unreadable")).await?;
            let third = coordinator.prefetch(&pool[HELD..]).await;
            let counters = coordinator.counters();
            unreadable::check(&third, sent, before_third.unmatched_answers, counters.unmatched_answers)?;
            let all: Vec<PrefetchOutcome> = during.iter().chain(&after).chain(&third).cloned().collect();
            recount::check(&all, &counters)?;
            tokio::time::sleep_until(origin + KASMINA_CUT_AT).await;
            let (requests, replies) =
                (client(KASMINA, rng.stream("bus.cut.requests"))?, client(KASMINA, rng.stream("bus.cut.replies"))?);
            let mut cut_off = PrefetchCoordinator::new(requests, replies, config.prefetch(KASMINA), sim_clock());
            check_refused_start(cut_off.prepare().await)?;
            tokio::time::sleep_until(origin + KASMINA_REPAIR_AT).await;
            cut_off.prepare().await.map_err(|error| {
                Invariant::Scenario.violated(format!(
                    "with Kasmina's link to Redis back, the coordinator still could not start: {error}"
                ))
            })?;
            tracing::info!(
                target: TRACE_TARGET,
                ok = counters.ok,
                timeout = counters.timeout,
                error = counters.error,
                unmatched = counters.unmatched_answers,
                cache_hits = counters.cache_hits,
                "kasmina-prefetch-outage done"
            );
            Ok(())
        });
    }
}

/// The scenario's expectations of the two batches; see the module docs.
fn check(during: &[PrefetchOutcome], after: &[PrefetchOutcome], counters: &PrefetchCounters) -> Result<(), Violation> {
    let fail = |detail: String| Err(Invariant::Scenario.violated(detail));
    let held = |blueprint: &str| blueprint.starts_with("bench-");
    for outcome in during.iter().chain(after) {
        if let Some(wrong) = wrong_kernel(outcome, held(&outcome.blueprint_id)) {
            return fail(format!("request {} for {}: {wrong}", outcome.request_id, outcome.blueprint_id));
        }
    }
    for outcome in after {
        let expected = if held(&outcome.blueprint_id) { PrefetchStatus::Ok } else { PrefetchStatus::Error };
        if outcome.status != expected {
            return fail(format!(
                "after the outage, {} ended {:?} instead of {expected:?}: Urza is back and answers every request",
                outcome.blueprint_id, outcome.status
            ));
        }
    }
    let timed_out = during.iter().chain(after).filter(|o| o.status == PrefetchStatus::Timeout).count() as u64;
    if timed_out == 0 {
        return fail("no request of the first batch timed out: the outage did not bite".to_owned());
    }
    // Urza answers a request once (it drops redeliveries by id), so no more
    // answers come back unmatched than requests timed out; and requests sent
    // during the cut reach Urza after the repair, whose answers come late.
    // Not every timed-out request is answered: Urza acks a request when it
    // reads it and drops an answer it cannot publish in three connect attempts.
    if !(1..=timed_out).contains(&counters.unmatched_answers) {
        return fail(format!(
            "{timed_out} requests timed out and Urza answers each at most once, some after the repair, \
             but Kasmina counted {} unmatched answers",
            counters.unmatched_answers
        ));
    }
    let from_cache = during.iter().chain(after).filter(|o| o.kernel.source == KernelSource::Cached).count() as u64;
    if counters.cache_hits != from_cache {
        return fail(format!(
            "{from_cache} requests were served from the cache, but Kasmina counted {}",
            counters.cache_hits
        ));
    }
    Ok(())
}

/// A coordinator started while Kasmina is cut off from Redis says so.
fn check_refused_start(prepared: Result<(), OonaError>) -> Result<(), Violation> {
    match prepared {
        Err(error) => {
            tracing::info!(target: TRACE_TARGET, %error, "kasmina-prefetch-outage: a coordinator cut off from Redis refused to start");
            Ok(())
        }
        Ok(()) => Err(Invariant::Scenario.violated(
            "a coordinator started while Kasmina was cut off from Redis prepared its reply stream without error"
                .to_owned(),
        )),
    }
}

/// What is wrong with the kernel `outcome` carries, if anything: an ok request
/// has the requested blueprint's fetched or cached kernel (and only for a
/// blueprint Urza holds), any other the fallback.
fn wrong_kernel(outcome: &PrefetchOutcome, held: bool) -> Option<String> {
    let kernel = &outcome.kernel;
    let served_as = format!("ended {:?} with {} ({:?})", outcome.status, kernel.blueprint_id, kernel.source);
    let right = match outcome.status {
        PrefetchStatus::Ok => {
            held && kernel.blueprint_id == outcome.blueprint_id
                && matches!(kernel.source, KernelSource::Fetched | KernelSource::Cached)
        }
        PrefetchStatus::Timeout | PrefetchStatus::Error => kernel.source == KernelSource::Fallback,
    };
    (!right).then_some(served_as)
}

#[cfg(test)]
mod tests {
    use esper_core::kasmina::Kernel;

    use super::*;

    fn outcome(blueprint: &str, status: PrefetchStatus, source: KernelSource) -> PrefetchOutcome {
        let kernel_blueprint = if source == KernelSource::Fallback { "BP001" } else { blueprint };
        PrefetchOutcome {
            request_id: if source == KernelSource::Cached { String::new() } else { format!("kasmina-{blueprint}") },
            blueprint_id: blueprint.to_owned(),
            status,
            kernel: Kernel {
                blueprint_id: kernel_blueprint.to_owned(),
                artifact_ref: String::new(),
                source,
                prewarm_ms: 0.0,
            },
            latency: Duration::from_millis(40),
        }
    }

    /// A first batch with a timeout and an error, a second with a cache hit,
    /// a fetch and an error, and the counters that go with them.
    fn batches() -> (Vec<PrefetchOutcome>, Vec<PrefetchOutcome>, PrefetchCounters) {
        let during = vec![
            outcome("bench-0000", PrefetchStatus::Ok, KernelSource::Fetched),
            outcome("bench-0001", PrefetchStatus::Timeout, KernelSource::Fallback),
            outcome("lacked-00", PrefetchStatus::Error, KernelSource::Fallback),
        ];
        let after = vec![
            outcome("bench-0000", PrefetchStatus::Ok, KernelSource::Cached),
            outcome("bench-0001", PrefetchStatus::Ok, KernelSource::Fetched),
            outcome("lacked-00", PrefetchStatus::Error, KernelSource::Fallback),
        ];
        let counters = PrefetchCounters { unmatched_answers: 1, cache_hits: 1, ..PrefetchCounters::default() };
        (during, after, counters)
    }

    #[test]
    fn batches_that_meet_the_expectations_pass() {
        let (during, after, counters) = batches();
        assert_eq!(check(&during, &after, &counters), Ok(()));
    }

    #[test]
    fn a_wrong_kernel_a_miscount_or_an_outage_that_never_bit_breaks_the_scenario() {
        type Plant = fn(&mut Vec<PrefetchOutcome>, &mut Vec<PrefetchOutcome>, &mut PrefetchCounters);
        let planted: [(&str, Plant); 8] = [
            ("a timeout served without the fallback", |during, _, _| during[1].kernel.source = KernelSource::Fetched),
            ("an ok request given another blueprint's kernel", |during, _, _| {
                during[0].kernel.blueprint_id = "bench-0009".to_owned();
            }),
            ("a lacked blueprint served ok", |_, after, _| {
                after[2] = outcome("lacked-00", PrefetchStatus::Ok, KernelSource::Fetched);
            }),
            ("a held kernel still failing after the outage", |_, after, _| {
                after[1] = outcome("bench-0001", PrefetchStatus::Timeout, KernelSource::Fallback);
            }),
            ("no late answer counted", |_, _, counters| counters.unmatched_answers = 0),
            ("more late answers than timeouts", |_, _, counters| counters.unmatched_answers = 2),
            ("a cache hit not counted", |_, _, counters| counters.cache_hits = 0),
            ("no timeout at all", |during, _, counters| {
                during[1] = outcome("bench-0001", PrefetchStatus::Ok, KernelSource::Fetched);
                counters.unmatched_answers = 0;
            }),
        ];
        for (case, plant) in planted {
            let (mut during, mut after, mut counters) = batches();
            plant(&mut during, &mut after, &mut counters);
            let violation = check(&during, &after, &counters).expect_err(case);
            assert_eq!(violation.invariant, Invariant::Scenario, "{case}: {violation}");
        }
    }
}
