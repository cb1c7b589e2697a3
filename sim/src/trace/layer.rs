//! The `tracing` layer that turns events into canonical lines.

use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::TraceRecorder;
use super::canonical::line;

/// turmoil wraps each host's tick in a span of this name with the host in `name`.
const TURMOIL_HOST_SPAN: &str = "node";
/// Host label for events raised by the world itself (fault injection).
const WORLD_HOST: &str = "world";

/// Records every non-turmoil event into a shared [`TraceRecorder`].
#[derive(Debug, Clone)]
pub struct TraceLayer {
    recorder: Arc<Mutex<TraceRecorder>>,
}

impl TraceLayer {
    /// A layer feeding `recorder`.
    pub fn new(recorder: Arc<Mutex<TraceRecorder>>) -> Self {
        Self { recorder }
    }
}

/// The host name stored on turmoil's per-host span.
struct HostName(String);

impl Visit for HostName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            value.clone_into(&mut self.0);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = format!("{value:?}");
        }
    }
}

fn is_turmoil(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("turmoil")
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // turmoil's own events are never hashed; telling tracing so up front saves
        // building them at all. Its host span must stay on: it names the host.
        if metadata.is_event() && is_turmoil(metadata) { Interest::never() } else { Interest::always() }
    }

    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let metadata = attributes.metadata();
        if metadata.name() != TURMOIL_HOST_SPAN || !is_turmoil(metadata) {
            return;
        }
        let mut host = HostName(String::new());
        attributes.record(&mut host);
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(host);
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        if is_turmoil(event.metadata()) {
            return;
        }
        let host = context.event_scope(event).and_then(|scope| {
            scope.from_root().find_map(|span| span.extensions().get::<HostName>().map(|host| host.0.clone()))
        });
        let mut recorder = self.recorder.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = turmoil::sim_elapsed().unwrap_or_else(|| recorder.world_time());
        recorder.record(line(elapsed, host.as_deref().unwrap_or(WORLD_HOST), event));
    }
}
