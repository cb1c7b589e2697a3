//! The `tracing` subscriber that turns a run's events into canonical lines.
//!
//! Written against `tracing::Subscriber` directly rather than as a
//! `tracing-subscriber` layer: the world runs on one thread and only needs to know
//! which host an event came from, and turmoil opens a span per host per step, so a
//! general span registry was the largest cost of a simulated run. This keeps just a
//! stack of entered spans and the host each of turmoil's host spans names.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use super::TraceRecorder;
use super::canonical::line;

/// turmoil wraps each host's tick in a span of this name with the host in `name`.
const TURMOIL_HOST_SPAN: &str = "node";
/// Host label for events raised by the world itself (fault injection).
const WORLD_HOST: &str = "world";

/// Records every event except turmoil's own into a shared [`TraceRecorder`].
#[derive(Debug)]
pub struct TraceSubscriber {
    recorder: Arc<Mutex<TraceRecorder>>,
    next_id: AtomicU64,
    spans: Mutex<SpanState>,
}

/// Host names seen so far, the host each live turmoil host span names (with its
/// handle count), and the stack of entered spans.
#[derive(Debug, Default)]
struct SpanState {
    hosts: Vec<Arc<str>>,
    host_spans: BTreeMap<u64, (usize, usize)>,
    entered: Vec<u64>,
}

impl SpanState {
    fn current_host(&self) -> Option<Arc<str>> {
        let host = self.entered.iter().rev().find_map(|id| self.host_spans.get(id).map(|&(host, _)| host))?;
        self.hosts.get(host).cloned()
    }

    /// The index of `name` in the host table, adding it the first time.
    fn intern(&mut self, name: &str) -> usize {
        match self.hosts.iter().position(|known| &**known == name) {
            Some(index) => index,
            None => {
                self.hosts.push(name.into());
                self.hosts.len() - 1
            }
        }
    }
}

impl TraceSubscriber {
    /// A subscriber feeding `recorder`.
    pub fn new(recorder: Arc<Mutex<TraceRecorder>>) -> Self {
        Self { recorder, next_id: AtomicU64::new(1), spans: Mutex::new(SpanState::default()) }
    }

    fn spans(&self) -> MutexGuard<'_, SpanState> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the `name` field of turmoil's host span.
#[derive(Default)]
struct HostName(Option<String>);

impl Visit for HostName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

fn is_turmoil(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("turmoil")
}

impl Subscriber for TraceSubscriber {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // turmoil's own events describe the simulator, not the system under test;
        // saying so up front spares building them at all. Its host span stays on.
        if metadata.is_event() && is_turmoil(metadata) { Interest::never() } else { Interest::always() }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !(metadata.is_event() && is_turmoil(metadata))
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let metadata = attributes.metadata();
        if metadata.name() == TURMOIL_HOST_SPAN && is_turmoil(metadata) {
            let mut host = HostName::default();
            attributes.record(&mut host);
            if let Some(name) = host.0 {
                let mut spans = self.spans();
                let index = spans.intern(&name);
                spans.host_spans.insert(id, (index, 1));
            }
        }
        Id::from_u64(id)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let host = self.spans().current_host();
        let mut recorder = self.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = turmoil::sim_elapsed().unwrap_or_else(|| recorder.world_time());
        let target = event.metadata().target();
        recorder.record(elapsed, target, line(elapsed, host.as_deref().unwrap_or(WORLD_HOST), event));
        // A livelocked loop never yields, so the only way to stop it is from
        // inside: a panic in the event it logs unwinds the loop, and the world
        // reads the livelock back from the recorder. Never while already
        // unwinding: events logged by destructors then would abort the process.
        if let Some(livelock) = recorder.livelock().filter(|_| !std::thread::panicking()) {
            drop(recorder);
            panic!("{livelock}");
        }
    }

    fn enter(&self, span: &Id) {
        self.spans().entered.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut spans = self.spans();
        if let Some(position) = spans.entered.iter().rposition(|&entered| entered == span.into_u64()) {
            spans.entered.remove(position);
        }
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Some((_, handles)) = self.spans().host_spans.get_mut(&span.into_u64()) {
            *handles += 1;
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let mut spans = self.spans();
        let Some((_, handles)) = spans.host_spans.get_mut(&span.into_u64()) else {
            return true;
        };
        *handles -= 1;
        let closed = *handles == 0;
        if closed {
            spans.host_spans.remove(&span.into_u64());
        }
        closed
    }
}
