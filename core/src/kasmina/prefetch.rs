//! The prefetch coordinator: fetches blueprint kernels from Urza over Oona.
//!
//! A request goes out on the kernel request stream with a fresh request id and
//! Kasmina's `issued_at`; Urza's answer (ready or error) comes back on the reply
//! stream and is matched by that id, in whatever order answers arrive. At most
//! `max_inflight` requests are out at once; each has its own deadline, and a
//! request that misses it, fails to publish or gets an error answer is served
//! by the fallback kernel (Esper-Lite's `BP001`, the identity) and counted.
//! Fetched kernels are cached by blueprint, so a second request for one is
//! answered without the bus.
//!
//! One batch ([`PrefetchCoordinator::prefetch`]) runs three loops in one task:
//! the issuer publishes as slots free up, the reader consumes answers (a
//! blocking group read, so it has its own Oona connection), the sweeper expires
//! requests at their deadlines. A batch therefore always ends: every request
//! is answered, errs or times out, and the reader's last blocking read lasts at
//! most the reply client's `block`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngCore;
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, sleep, sleep_until};

use super::cache::{KernelCache, LockWaits};
use crate::clock::UnixClock;
use crate::leyline::{
    BusEnvelope, BusMessageType, KernelArtifactError, KernelArtifactReady, KernelPrefetchRequest, MessagePriority,
    MetricPoint, Timestamp,
};
use crate::net::Connector;
use crate::oona::{OonaClient, OonaError, PublishOutcome};

/// How the coordinator fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// Prefix of request ids; must differ between lives of a Kasmina, so that a
    /// restarted one never reuses an id Urza still remembers.
    pub requester: String,
    /// Stamped on every request.
    pub training_run_id: String,
    /// Per-request deadline: 1 s (Esper-Lite's max(2 × 10 ms budget, 1000 ms)).
    pub timeout: Duration,
    /// Requests out at once at most: 8.
    pub max_inflight: usize,
    /// The kernel used when a fetch fails: `BP001` (identity).
    pub fallback_blueprint: String,
    /// Kernels cached at most: 32.
    pub cache_capacity: usize,
    /// Pause after a failed read of the reply stream: 50 ms.
    pub retry_pause: Duration,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        Self {
            requester: "kasmina".to_owned(),
            training_run_id: String::new(),
            timeout: Duration::from_secs(1),
            max_inflight: 8,
            fallback_blueprint: "BP001".to_owned(),
            cache_capacity: 32,
            retry_pause: Duration::from_millis(50),
        }
    }
}

/// How one request ended (the `status` label of `kasmina.prefetch.requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefetchStatus {
    /// Urza answered ready in time (or the kernel was cached).
    Ok,
    /// No answer before the deadline.
    Timeout,
    /// Urza answered with an error, or the request could not be published.
    Error,
}

impl PrefetchStatus {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// Where a kernel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelSource {
    /// Fetched from Urza by this request.
    Fetched,
    /// Already in the cache.
    Cached,
    /// The fallback kernel, because the fetch failed.
    Fallback,
    /// Built into Kasmina: the seed manager's own kernels when no Urza is in play.
    Builtin,
}

/// A kernel Kasmina can attach to a seed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kernel {
    pub blueprint_id: String,
    pub artifact_ref: String,
    pub source: KernelSource,
    /// Urza's reported time to make the kernel ready (its p50); 0 for the fallback.
    pub prewarm_ms: f32,
}

/// One request's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrefetchOutcome {
    /// Empty for a cache hit (nothing was sent).
    pub request_id: String,
    pub blueprint_id: String,
    pub status: PrefetchStatus,
    pub kernel: Kernel,
    /// From issue to answer (or deadline); zero for a cache hit.
    pub latency: Duration,
}

/// The coordinator's counters, named as its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PrefetchCounters {
    pub ok: u64,
    pub timeout: u64,
    pub error: u64,
    /// Requests served by the fallback kernel.
    pub fallback_used: u64,
    pub cache_hits: u64,
    /// Answers matching no request in flight (late, duplicated, or another requester's).
    pub unmatched_answers: u64,
    pub inflight: usize,
    pub inflight_max: usize,
    /// Sum and count of the latencies of answered and timed-out requests.
    pub latency_ms_sum: f64,
    pub latency_samples: u64,
    pub cache_lock: LockWaits,
}

impl PrefetchCounters {
    /// Mean request latency so far, 0 before the first.
    pub fn latency_ms_mean(&self) -> f64 {
        if self.latency_samples == 0 { 0.0 } else { self.latency_ms_sum / self.latency_samples as f64 }
    }

    /// The counters as Esper-Lite-named metric points.
    pub fn metrics(&self) -> Vec<MetricPoint> {
        let mut points: Vec<MetricPoint> = [
            (PrefetchStatus::Ok, self.ok),
            (PrefetchStatus::Timeout, self.timeout),
            (PrefetchStatus::Error, self.error),
        ]
        .into_iter()
        .map(|(status, count)| {
            let mut point = MetricPoint::new("kasmina.prefetch.requests_total", count as f64, "count");
            point.attributes.insert("status".to_owned(), status.as_str().to_owned());
            point
        })
        .collect();
        points.extend([
            MetricPoint::new("kasmina.prefetch.inflight", self.inflight as f64, "count"),
            MetricPoint::new("kasmina.prefetch.latency_ms", self.latency_ms_mean(), "ms"),
            MetricPoint::new("kasmina.prefetch.fallback_total", self.fallback_used as f64, "count"),
            MetricPoint::new("kasmina.cache.lock_wait_ms", self.cache_lock.wait_ms_max, "ms"),
        ]);
        points
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct PrefetchCoordinator<C: Connector, R: RngCore> {
    requests: OonaClient<C, R>,
    replies: OonaClient<C, R>,
    config: PrefetchConfig,
    clock: UnixClock,
    cache: KernelCache,
    issued: u64,
    counters: PrefetchCounters,
}

/// A request in flight.
#[derive(Debug)]
struct Pending {
    index: usize,
    blueprint_id: String,
    sent_at: Instant,
    deadline: Instant,
}

/// One batch's shared state.
#[derive(Debug)]
struct Flight {
    pending: BTreeMap<String, Pending>,
    outcomes: Vec<Option<PrefetchOutcome>>,
    issued_all: bool,
    counters: PrefetchCounters,
    fallback: Kernel,
}

impl Flight {
    fn done(&self) -> bool {
        self.issued_all && self.pending.is_empty()
    }

    fn send(&mut self, request_id: String, pending: Pending) {
        self.pending.insert(request_id, pending);
        self.counters.inflight = self.pending.len();
        self.counters.inflight_max = self.counters.inflight_max.max(self.pending.len());
    }

    /// Ends request `request_id`; false when it was not in flight.
    fn finish(&mut self, request_id: &str, status: PrefetchStatus, kernel: Option<Kernel>) -> bool {
        let Some(pending) = self.pending.remove(request_id) else {
            self.counters.unmatched_answers += 1;
            return false;
        };
        self.counters.inflight = self.pending.len();
        let latency = pending.sent_at.elapsed();
        let kernel = kernel.unwrap_or_else(|| {
            self.counters.fallback_used += 1;
            self.fallback.clone()
        });
        match status {
            PrefetchStatus::Ok => self.counters.ok += 1,
            PrefetchStatus::Timeout => self.counters.timeout += 1,
            PrefetchStatus::Error => self.counters.error += 1,
        }
        let latency_ms = latency.as_secs_f64() * 1_000.0;
        self.counters.latency_ms_sum += latency_ms;
        self.counters.latency_samples += 1;
        tracing::debug!(request_id, status = status.as_str(), latency_ms, "kasmina.prefetch");
        let outcome = PrefetchOutcome {
            request_id: request_id.to_owned(),
            blueprint_id: pending.blueprint_id,
            status,
            kernel,
            latency,
        };
        assert!(self.outcomes[pending.index].replace(outcome).is_none(), "request answered twice");
        true
    }
}

impl<C: Connector, R: RngCore> PrefetchCoordinator<C, R> {
    /// A coordinator publishing on `requests` and reading answers on `replies`
    /// (two connections: the reader's blocking read holds its own).
    pub fn new(
        requests: OonaClient<C, R>,
        replies: OonaClient<C, R>,
        config: PrefetchConfig,
        clock: UnixClock,
    ) -> Self {
        let cache = KernelCache::new(config.cache_capacity);
        Self { requests, replies, config, clock, cache, issued: 0, counters: PrefetchCounters::default() }
    }

    /// Creates the reply stream's consumer group, so answers published before
    /// the first read are not missed. Call once before the first batch.
    pub async fn prepare(&mut self) -> Result<(), OonaError> {
        let stream = self.replies.config().kernel_reply_stream.clone();
        self.replies.ensure_consumer_group(&stream).await
    }

    /// Counters so far.
    pub fn counters(&self) -> PrefetchCounters {
        self.counters
    }

    /// Fetches a kernel for each blueprint; outcomes in the same order.
    pub async fn prefetch(&mut self, blueprints: &[String]) -> Vec<PrefetchOutcome> {
        let fallback = Kernel {
            blueprint_id: self.config.fallback_blueprint.clone(),
            artifact_ref: format!("builtin://{}", self.config.fallback_blueprint),
            source: KernelSource::Fallback,
            prewarm_ms: 0.0,
        };
        let flight = RefCell::new(Flight {
            pending: BTreeMap::new(),
            outcomes: vec![None; blueprints.len()],
            issued_all: false,
            counters: self.counters,
            fallback,
        });
        let slots = Semaphore::new(self.config.max_inflight.max(1));
        let wake = Notify::new();
        let shared = Shared { flight: &flight, slots: &slots, wake: &wake, cache: &self.cache, config: &self.config };
        let mut issuer = Issuer { requests: &mut self.requests, clock: self.clock, issued: &mut self.issued };
        let (issuer_waits, reader_waits, ()) =
            tokio::join!(issuer.run(&shared, blueprints), read_answers(&mut self.replies, &shared), sweep(&shared));
        let mut flight = flight.into_inner();
        for waits in [issuer_waits, reader_waits] {
            flight.counters.cache_lock.wait_ms_max = flight.counters.cache_lock.wait_ms_max.max(waits.wait_ms_max);
        }
        self.counters = flight.counters;
        let outcomes: Vec<PrefetchOutcome> = flight.outcomes.into_iter().flatten().collect();
        assert_eq!(outcomes.len(), blueprints.len(), "every request ends");
        outcomes
    }
}

/// What the three loops of a batch share.
struct Shared<'a> {
    flight: &'a RefCell<Flight>,
    slots: &'a Semaphore,
    wake: &'a Notify,
    cache: &'a KernelCache,
    config: &'a PrefetchConfig,
}

impl Shared<'_> {
    /// Ends a request and frees its slot.
    fn finish(&self, request_id: &str, status: PrefetchStatus, kernel: Option<Kernel>) {
        if self.flight.borrow_mut().finish(request_id, status, kernel) {
            self.slots.add_permits(1);
            self.wake.notify_one();
        }
    }
}

struct Issuer<'a, C: Connector, R: RngCore> {
    requests: &'a mut OonaClient<C, R>,
    clock: UnixClock,
    issued: &'a mut u64,
}

impl<C: Connector, R: RngCore> Issuer<'_, C, R> {
    async fn run(&mut self, shared: &Shared<'_>, blueprints: &[String]) -> LockWaits {
        let mut waits = LockWaits::default();
        for (index, blueprint_id) in blueprints.iter().enumerate() {
            if let Some(kernel) = shared.cache.get(blueprint_id, &mut waits).await {
                let mut flight = shared.flight.borrow_mut();
                flight.counters.ok += 1;
                flight.counters.cache_hits += 1;
                let kernel = Kernel { source: KernelSource::Cached, ..kernel };
                let outcome = PrefetchOutcome {
                    request_id: String::new(),
                    blueprint_id: blueprint_id.clone(),
                    status: PrefetchStatus::Ok,
                    kernel,
                    latency: Duration::ZERO,
                };
                flight.outcomes[index] = Some(outcome);
                continue;
            }
            // The semaphore is never closed, so acquiring only waits.
            if let Ok(permit) = shared.slots.acquire().await {
                permit.forget();
            }
            self.issue(shared, index, blueprint_id).await;
        }
        shared.flight.borrow_mut().issued_all = true;
        shared.wake.notify_one();
        waits
    }

    async fn issue(&mut self, shared: &Shared<'_>, index: usize, blueprint_id: &str) {
        *self.issued += 1;
        let request_id = format!("{}-{}", shared.config.requester, self.issued);
        let sent_at = Instant::now();
        let request = KernelPrefetchRequest {
            request_id: request_id.clone(),
            blueprint_id: blueprint_id.to_owned(),
            training_run_id: shared.config.training_run_id.clone(),
            issued_at: Some(Timestamp::from_nanos(self.clock.now_ns())),
        };
        let pending = Pending {
            index,
            blueprint_id: blueprint_id.to_owned(),
            sent_at,
            deadline: sent_at + shared.config.timeout,
        };
        shared.flight.borrow_mut().send(request_id.clone(), pending);
        shared.wake.notify_one();
        match self.requests.publish(&BusEnvelope::wrap(&request, MessagePriority::Normal)).await {
            Ok(PublishOutcome::Published { .. }) => {}
            Ok(refused) => {
                tracing::warn!(%request_id, ?refused, "kasmina: kernel request not published");
                shared.finish(&request_id, PrefetchStatus::Error, None);
            }
            Err(error) => {
                tracing::warn!(%request_id, %error, "kasmina: kernel request not published");
                shared.finish(&request_id, PrefetchStatus::Error, None);
            }
        }
    }
}

/// Consumes answers until the batch is done; returns the cache's lock waits.
async fn read_answers<C: Connector, R: RngCore>(replies: &mut OonaClient<C, R>, shared: &Shared<'_>) -> LockWaits {
    let mut waits = LockWaits::default();
    let stream = replies.config().kernel_reply_stream.clone();
    while !shared.flight.borrow().done() {
        let mut fetched = Vec::new();
        let round = replies
            .consume(&stream, |delivery| {
                match answer(delivery.envelope) {
                    Answer::Ready(ready) => {
                        let kernel = Kernel {
                            blueprint_id: ready.blueprint_id,
                            artifact_ref: ready.artifact_ref,
                            source: KernelSource::Fetched,
                            prewarm_ms: ready.prewarm_p50_ms,
                        };
                        fetched.push(kernel.clone());
                        shared.finish(&ready.request_id, PrefetchStatus::Ok, Some(kernel));
                    }
                    Answer::Error(error) => {
                        tracing::warn!(request_id = %error.request_id, reason = %error.reason, "kasmina: kernel fetch failed");
                        shared.finish(&error.request_id, PrefetchStatus::Error, None);
                    }
                    Answer::Unreadable(reason) => {
                        tracing::warn!(%reason, "kasmina: unreadable kernel answer acknowledged and ignored");
                        shared.flight.borrow_mut().counters.unmatched_answers += 1;
                    }
                }
                Ok::<(), String>(())
            })
            .await;
        for kernel in fetched {
            shared.cache.insert(kernel, &mut waits).await;
        }
        if let Err(error) = round {
            tracing::warn!(%error, "kasmina: reading kernel answers failed; retrying");
            sleep(shared.config.retry_pause).await;
        }
    }
    waits
}

enum Answer {
    Ready(KernelArtifactReady),
    Error(KernelArtifactError),
    Unreadable(String),
}

fn answer(envelope: &BusEnvelope) -> Answer {
    let opened = match envelope.message_type() {
        BusMessageType::KernelPrefetchReady => envelope.open().map(Answer::Ready),
        BusMessageType::KernelPrefetchError => envelope.open().map(Answer::Error),
        other => return Answer::Unreadable(format!("{other} on the kernel reply stream")),
    };
    opened.unwrap_or_else(|error| Answer::Unreadable(error.to_string()))
}

/// Expires requests at their deadlines until the batch is done.
async fn sweep(shared: &Shared<'_>) {
    loop {
        let next = {
            let flight = shared.flight.borrow();
            if flight.done() {
                return;
            }
            flight.pending.iter().map(|(id, p)| (p.deadline, id.clone())).min()
        };
        match next {
            Some((deadline, request_id)) if deadline <= Instant::now() => {
                tracing::warn!(%request_id, "kasmina: kernel request timed out; using the fallback kernel");
                shared.finish(&request_id, PrefetchStatus::Timeout, None);
            }
            Some((deadline, _)) => {
                tokio::select! {
                    () = sleep_until(deadline) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}
