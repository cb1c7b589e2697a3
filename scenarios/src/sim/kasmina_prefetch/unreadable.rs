//! Unreadable kernel answers, for `kasmina-prefetch-outage`'s third batch.
//!
//! Kasmina acknowledges and counts (`unmatched_answers`) an answer it cannot
//! read: a signed envelope of another type on the kernel reply stream, or a
//! READY whose payload does not decode. Oona's signature check passes both, so
//! only the coordinator's own reading decides. A stranger on Kasmina's host puts
//! a drawn number of them on the stream between batches; the third batch asks
//! only for blueprints Urza lacks (never cached, each answered with an error in
//! time once the outage is over), so no late answer can be counted in it and
//! the count must grow by exactly the stranger's.

use esper_core::kasmina::{PrefetchOutcome, PrefetchStatus};
use esper_core::leyline::signing::sign;
use esper_core::leyline::{BusEnvelope, BusMessageType, KernelPrefetchRequest, MessagePriority};
use esper_core::oona::FRAME_FIELD;
use esper_sim::{Invariant, TurmoilConnector, Violation};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::sim::{KASMINA, REDIS, REDIS_PORT};
use super::stream_config;
use crate::sim::control_loop::hosts::{signing_key, sim_clock};
use crate::sim::oona_checks::plain_connection;

/// Publishes between one and three unreadable answers on Kasmina's reply
/// stream, alternating the two kinds from a drawn first one; how many.
pub(super) async fn publish(draws: &mut ChaCha8Rng) -> Result<u64, String> {
    let count = draws.random_range(1..=3_u64);
    let first_kind = draws.random_range(0..2_u64);
    let stream = stream_config(KASMINA, "").kernel_reply_stream;
    let key = signing_key()?;
    let mut connection = plain_connection(&TurmoilConnector, REDIS, REDIS_PORT).await?;
    for index in 0..count {
        let envelope = if (first_kind + index) % 2 == 0 { wrong_type(index) } else { undecodable_ready() };
        let frame = sign(&key, &envelope, sim_clock().now_ms(), draws);
        let add = redis::cmd("XADD").arg(&stream).arg("*").arg(FRAME_FIELD).arg(frame).clone();
        let _: String = add
            .query_async(&mut connection)
            .await
            .map_err(|error| format!("the stranger could not add an unreadable answer: {error}"))?;
    }
    Ok(count)
}

/// A request where an answer belongs: readable, but not an answer.
fn wrong_type(index: u64) -> BusEnvelope {
    let request = KernelPrefetchRequest {
        request_id: format!("stranger-{index}"),
        blueprint_id: "bench-0000".to_owned(),
        training_run_id: "stranger".to_owned(),
        issued_at: None,
    };
    BusEnvelope::wrap(&request, MessagePriority::Normal)
}

/// A READY whose payload is not a `KernelArtifactReady` (a field-1 varint where
/// a string belongs).
fn undecodable_ready() -> BusEnvelope {
    BusEnvelope {
        message_type: BusMessageType::KernelPrefetchReady.into(),
        payload: vec![0x08, 0x01],
        attributes: std::collections::BTreeMap::new(),
        priority: MessagePriority::Normal.into(),
    }
}

/// The third batch: every request errs (Urza lacks each blueprint and is back),
/// and Kasmina's unmatched count grew by exactly the `sent` unreadable answers.
pub(super) fn check(third: &[PrefetchOutcome], sent: u64, before: u64, after: u64) -> Result<(), Violation> {
    let fail = |detail: String| Err(Invariant::Scenario.violated(detail));
    if let Some(outcome) = third.iter().find(|o| o.status != PrefetchStatus::Error) {
        return fail(format!(
            "third batch: {} ended {:?}, but Urza lacks it and answers in time: only an error fits",
            outcome.blueprint_id, outcome.status
        ));
    }
    let counted = after.checked_sub(before);
    if counted != Some(sent) {
        return fail(format!(
            "{sent} unreadable answers were put on Kasmina's reply stream before a batch with no late answer, \
             but its unmatched count went from {before} to {after}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use esper_core::kasmina::{Kernel, KernelSource};

    use super::*;

    fn errored(blueprint: &str) -> PrefetchOutcome {
        PrefetchOutcome {
            request_id: format!("kasmina-{blueprint}"),
            blueprint_id: blueprint.to_owned(),
            status: PrefetchStatus::Error,
            kernel: Kernel {
                blueprint_id: "BP001".to_owned(),
                artifact_ref: String::new(),
                source: KernelSource::Fallback,
                prewarm_ms: 0.0,
            },
            latency: Duration::from_millis(40),
        }
    }

    #[test]
    fn neither_kind_reads_as_an_answer() {
        use esper_core::leyline::KernelArtifactReady;
        assert!(wrong_type(0).open::<KernelArtifactReady>().is_err(), "a request is not an answer");
        assert!(undecodable_ready().open::<KernelArtifactReady>().is_err(), "the payload must not decode");
    }

    #[test]
    fn an_exact_count_of_errors_passes_and_any_miscount_or_other_status_fails() {
        let third = vec![errored("lacked-00"), errored("lacked-01")];
        assert_eq!(check(&third, 2, 5, 7), Ok(()));
        for (case, sent, before, after) in
            [("one not counted", 2, 5, 6), ("one counted twice", 2, 5, 8), ("the count went down", 2, 5, 3)]
        {
            let violation = check(&third, sent, before, after).expect_err(case);
            assert_eq!(violation.invariant, Invariant::Scenario, "{case}");
        }
        let mut timed_out = third.clone();
        timed_out[1].status = PrefetchStatus::Timeout;
        assert!(check(&timed_out, 2, 5, 7).is_err(), "a timeout in the third batch");
    }
}
