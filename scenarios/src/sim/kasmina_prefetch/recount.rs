//! `telemetry-complete` for Kasmina's prefetch metrics: the points the coordinator
//! reports (`kasmina.prefetch.*`, what `esper up` ships each epoch) recounted from
//! the outcomes the same batch returned. The coordinator keeps running sums as
//! requests end; the recount starts from the outcomes alone, so a miscounted
//! status, a wrong label or a broken mean shows as a disagreement.

use esper_core::kasmina::{KernelSource, PrefetchCounters, PrefetchOutcome, PrefetchStatus};
use esper_sim::{Invariant, Violation};

/// Sums over a few hundred latencies, added in a different order: agreement to
/// a millionth of a millisecond.
const LATENCY_TOLERANCE_MS: f64 = 1e-6;

/// The reported points of a fresh coordinator after its batches agree with
/// `outcomes`, every batch's: requests by status (cache hits are `ok`),
/// fallbacks, nothing left in flight, and the mean latency of the requests that
/// were sent.
pub(super) fn check(outcomes: &[PrefetchOutcome], counters: &PrefetchCounters) -> Result<(), Violation> {
    let with_status = |status| outcomes.iter().filter(|o| o.status == status).count() as f64;
    let sent: Vec<f64> =
        outcomes.iter().filter(|o| !o.request_id.is_empty()).map(|o| o.latency.as_secs_f64() * 1_000.0).collect();
    let mean_ms = if sent.is_empty() { 0.0 } else { sent.iter().sum::<f64>() / sent.len() as f64 };
    let fallbacks = outcomes.iter().filter(|o| o.kernel.source == KernelSource::Fallback).count() as f64;
    let expected = [
        ("kasmina.prefetch.requests_total", Some("ok"), with_status(PrefetchStatus::Ok)),
        ("kasmina.prefetch.requests_total", Some("timeout"), with_status(PrefetchStatus::Timeout)),
        ("kasmina.prefetch.requests_total", Some("error"), with_status(PrefetchStatus::Error)),
        ("kasmina.prefetch.inflight", None, 0.0),
        ("kasmina.prefetch.latency_ms", None, mean_ms),
        ("kasmina.prefetch.fallback_total", None, fallbacks),
    ];
    let points = counters.metrics();
    for (name, status, value) in expected {
        let reported = points
            .iter()
            .find(|point| point.name == name && point.attributes.get("status").map(String::as_str) == status)
            .map(|point| point.value);
        let label = status.map_or_else(String::new, |status| format!("{{status={status}}}"));
        match reported {
            Some(reported) if (reported - value).abs() <= LATENCY_TOLERANCE_MS => {}
            Some(reported) => {
                return Err(Invariant::TelemetryComplete.violated(format!(
                    "Kasmina reports {name}{label} = {reported}, but its {} outcomes make it {value}",
                    outcomes.len()
                )));
            }
            None => {
                return Err(
                    Invariant::TelemetryComplete.violated(format!("Kasmina's prefetch metrics lack {name}{label}"))
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use esper_core::kasmina::Kernel;

    use super::*;

    fn outcome(request_id: &str, status: PrefetchStatus, source: KernelSource, latency_ms: u64) -> PrefetchOutcome {
        PrefetchOutcome {
            request_id: request_id.to_owned(),
            blueprint_id: "BP002".to_owned(),
            status,
            kernel: Kernel { blueprint_id: "BP002".to_owned(), artifact_ref: String::new(), source, prewarm_ms: 0.0 },
            latency: Duration::from_millis(latency_ms),
        }
    }

    fn batch() -> (Vec<PrefetchOutcome>, PrefetchCounters) {
        let outcomes = vec![
            outcome("r1", PrefetchStatus::Ok, KernelSource::Fetched, 40),
            outcome("", PrefetchStatus::Ok, KernelSource::Cached, 0),
            outcome("r2", PrefetchStatus::Timeout, KernelSource::Fallback, 1_000),
        ];
        let counters = PrefetchCounters {
            ok: 2,
            timeout: 1,
            fallback_used: 1,
            cache_hits: 1,
            latency_ms_sum: 1_040.0,
            latency_samples: 2,
            ..PrefetchCounters::default()
        };
        (outcomes, counters)
    }

    #[test]
    fn counters_that_match_the_outcomes_pass() {
        let (outcomes, counters) = batch();
        assert_eq!(check(&outcomes, &counters), Ok(()));
    }

    #[test]
    fn a_miscount_a_lost_sample_or_a_request_left_in_flight_breaks_telemetry_complete() {
        let broken: [fn(&mut PrefetchCounters); 5] =
            [|c| c.ok -= 1, |c| c.error += 1, |c| c.latency_samples += 1, |c| c.fallback_used = 0, |c| c.inflight = 1];
        for (case, break_it) in broken.into_iter().enumerate() {
            let (outcomes, mut counters) = batch();
            break_it(&mut counters);
            let violation = check(&outcomes, &counters).expect_err(&format!("case {case}"));
            assert_eq!(violation.invariant, Invariant::TelemetryComplete, "case {case}");
        }
    }
}
