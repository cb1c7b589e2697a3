//! Serving kernel prefetch requests: read `KernelPrefetchRequest`s from the
//! kernel request stream, answer each on the reply stream once its kernel is
//! "ready" — `ready_latency ± jitter` after the request was issued, drawn from
//! the injected seeded RNG — or at once with a `KernelArtifactError` for a
//! blueprint the [`Library`] has no kernel for. A ready answer names the kernel's
//! artifact, its SHA-256 and its guard digest from the library's record.
//!
//! Readiness is measured from the request's `issued_at` (the requester's clock),
//! so the model is "the kernel is usable L after it was asked for", whatever
//! the bus took to carry the request; a request that arrives after its due
//! time is answered at once. Latencies are whole milliseconds, the resolution
//! of the simulated clock.
//!
//! Two loops share one task: the reader consumes requests (a blocking group
//! read) into a bounded queue ordered by due time, the replier sleeps until the
//! earliest is due and publishes it. A full queue fails the handler, which
//! leaves the request pending in Redis for a later retry instead of growing
//! Urza's memory. Bus errors are logged and retried: Urza is a server and
//! outlives outages.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use rand::{Rng, RngCore};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};

use crate::clock::UnixClock;
use crate::leyline::{BusEnvelope, KernelArtifactError, KernelArtifactReady, KernelPrefetchRequest, MessagePriority};
use crate::net::Connector;
use crate::oona::{OonaClient, PublishOutcome};

use super::library::{ArtifactRecord, Library};

/// How Urza answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrzaConfig {
    /// Centre of the ready latency: 40 ms (the RC1 bench).
    pub ready_latency: Duration,
    /// Half-width of the uniform jitter around it: 8 ms.
    pub jitter: Duration,
    /// Requests waiting for their due time at most: 1024.
    pub queue_capacity: usize,
    /// Request ids remembered to drop redeliveries: 4096 (Esper-Lite's nonce cache).
    pub replay_memory: usize,
    /// Pause after a bus error before trying again: 100 ms.
    pub retry_pause: Duration,
}

impl Default for UrzaConfig {
    fn default() -> Self {
        Self {
            ready_latency: Duration::from_millis(40),
            jitter: Duration::from_millis(8),
            queue_capacity: 1_024,
            replay_memory: 4_096,
            retry_pause: Duration::from_millis(100),
        }
    }
}

/// An answer waiting for its due time.
#[derive(Debug)]
struct Answer {
    envelope: BusEnvelope,
    request_id: String,
}

/// What the two loops share.
#[derive(Debug, Default)]
struct Queue {
    /// Answers by (due, arrival order).
    due: BTreeMap<(Instant, u64), Answer>,
    arrivals: u64,
    seen: BTreeSet<String>,
    seen_order: VecDeque<String>,
}

/// Serves kernel requests from `library` until the future is dropped.
/// `requests` consumes the request stream (a blocking read occupies its
/// connection), `replies` publishes answers; `rng` draws latencies; `clock` is
/// the Unix clock requesters stamp `issued_at` with.
pub async fn serve_kernels<C: Connector, R: RngCore, S>(
    mut requests: OonaClient<C, R>,
    mut replies: OonaClient<C, R>,
    library: Library<S>,
    config: UrzaConfig,
    mut rng: impl RngCore,
    clock: UnixClock,
) {
    let queue = RefCell::new(Queue::default());
    let arrived = Notify::new();
    let stream = requests.config().kernel_request_stream.clone();
    let reader = async {
        loop {
            let round = requests
                .consume(&stream, |delivery| {
                    let request: KernelPrefetchRequest = delivery.envelope.open().map_err(|e| e.to_string())?;
                    let record = library.record(&request.blueprint_id);
                    admit(&mut queue.borrow_mut(), &config, &request, record.as_ref(), &mut rng, &clock)?;
                    arrived.notify_one();
                    Ok::<(), String>(())
                })
                .await;
            if let Err(error) = round {
                tracing::warn!(%error, "urza: reading kernel requests failed; retrying");
                sleep(config.retry_pause).await;
            }
        }
    };
    let replier = async {
        loop {
            let next = queue.borrow().due.keys().next().map(|(due, _)| *due);
            match next {
                Some(due) if due <= Instant::now() => {
                    let answer = queue.borrow_mut().due.pop_first().map(|(_, answer)| answer);
                    if let Some(answer) = answer {
                        answer_one(&mut replies, answer, config.retry_pause).await;
                    }
                }
                Some(due) => {
                    tokio::select! {
                        () = sleep_until(due) => {}
                        () = arrived.notified() => {}
                    }
                }
                None => arrived.notified().await,
            }
        }
    };
    tokio::join!(reader, replier);
}

/// Queues the answer to `request`, or refuses it (the entry stays pending).
fn admit(
    queue: &mut Queue,
    config: &UrzaConfig,
    request: &KernelPrefetchRequest,
    record: Option<&ArtifactRecord>,
    rng: &mut impl RngCore,
    clock: &UnixClock,
) -> Result<(), String> {
    if !queue.seen.insert(request.request_id.clone()) {
        tracing::warn!(request_id = %request.request_id, "urza: kernel_replay_dropped");
        return Ok(());
    }
    if queue.due.len() >= config.queue_capacity {
        queue.seen.remove(&request.request_id);
        return Err(format!("{} answers already queued", queue.due.len()));
    }
    queue.seen_order.push_back(request.request_id.clone());
    while queue.seen_order.len() > config.replay_memory {
        if let Some(oldest) = queue.seen_order.pop_front() {
            queue.seen.remove(&oldest);
        }
    }
    let (envelope, due) = if let Some(record) = record {
        let latency = draw_latency(config, rng);
        let issued_ns = request.issued_at.map_or_else(|| clock.now_ns(), |at| at.as_nanos());
        let ready_ns = issued_ns.saturating_add(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        let wait = Duration::from_nanos(ready_ns.saturating_sub(clock.now_ns()));
        let latency_ms = latency.as_millis();
        tracing::debug!(request_id = %request.request_id, latency_ms, wait_ms = wait.as_millis(), "urza: kernel request admitted");
        (BusEnvelope::wrap(&ready(request, record, latency), MessagePriority::Normal), Instant::now() + wait)
    } else {
        let error = KernelArtifactError {
            request_id: request.request_id.clone(),
            blueprint_id: request.blueprint_id.clone(),
            reason: "no kernel for this blueprint in the library".to_owned(),
        };
        (BusEnvelope::wrap(&error, MessagePriority::Normal), Instant::now())
    };
    queue.arrivals += 1;
    let answer = Answer { envelope, request_id: request.request_id.clone() };
    queue.due.insert((due, queue.arrivals), answer);
    Ok(())
}

/// `ready_latency ± jitter`, uniform over whole milliseconds.
fn draw_latency(config: &UrzaConfig, rng: &mut impl RngCore) -> Duration {
    let centre = u64::try_from(config.ready_latency.as_millis()).unwrap_or(u64::MAX);
    let jitter = u64::try_from(config.jitter.as_millis()).unwrap_or(0).min(centre);
    Duration::from_millis(rng.random_range(centre - jitter..=centre.saturating_add(jitter)))
}

fn ready(request: &KernelPrefetchRequest, record: &ArtifactRecord, latency: Duration) -> KernelArtifactReady {
    let millis = latency.as_secs_f32() * 1_000.0;
    KernelArtifactReady {
        request_id: request.request_id.clone(),
        blueprint_id: request.blueprint_id.clone(),
        artifact_ref: record.artifact_ref(),
        checksum: record.artifact_sha256.clone(),
        guard_digest: record.guard_digest.clone(),
        prewarm_p50_ms: millis,
        prewarm_p95_ms: millis,
    }
}

/// Publishes one answer; a refusal or bus error is logged and the answer dropped
/// (the requester's timeout and fallback cover it).
async fn answer_one<C: Connector, R: RngCore>(replies: &mut OonaClient<C, R>, answer: Answer, pause: Duration) {
    match replies.publish(&answer.envelope).await {
        Ok(PublishOutcome::Published { .. }) => {
            tracing::debug!(request_id = %answer.request_id, "urza: kernel answer published");
        }
        Ok(refused) => tracing::warn!(request_id = %answer.request_id, ?refused, "urza: kernel answer dropped"),
        Err(error) => {
            tracing::warn!(request_id = %answer.request_id, %error, "urza: kernel answer not published");
            sleep(pause).await;
        }
    }
}
