//! What Nissa's HTTP server sheds to stay answerable, and the guards that shed it.
//!
//! * the connection cap: at `http_max_connections` a new connection closes the
//!   oldest ([`ConnectionCap`]), so idle sockets cannot lock out a scrape;
//! * the idle keep-alive timeout: a kept-alive connection that sends no next
//!   request within `http_keep_alive_timeout` of its last answer is closed
//!   ([`KeepAlive`]);
//! * the body limit, enforced while the body streams in ([`limit_body`]): no
//!   endpoint takes a body, so a declared length over `max_request_bytes` is
//!   refused at once and a chunked body is counted as it arrives and refused
//!   the moment it passes the limit — never buffered, never read to its end;
//! * hyper's `header_read_timeout` (set in [`super::http`]), counted here.
//!
//! Each is counted in `esper_nissa_http_shed_total{reason}` ([`HttpShed`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{oneshot, watch};

use super::state::Nissa;

/// One kind of shed load: the `reason` label of `esper_nissa_http_shed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpShed {
    /// A connection that did not deliver a request head within the header-read timeout.
    HeaderTimeout,
    /// The oldest connection, closed to admit a new one at the connection cap.
    ConnectionEvicted,
    /// A kept-alive connection closed for sending no next request in time.
    IdleTimeout,
    /// A request whose body passed `max_request_bytes` (413).
    BodyTooLarge,
}

impl HttpShed {
    /// The `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::ConnectionEvicted => "connection_evicted",
            Self::IdleTimeout => "idle_timeout",
            Self::BodyTooLarge => "body_too_large",
        }
    }
}

/// The open connections, oldest first; each sender closes its connection.
#[derive(Debug, Default)]
pub(super) struct ConnectionCap {
    open: Mutex<VecDeque<oneshot::Sender<()>>>,
}

impl ConnectionCap {
    /// Registers a new connection, closing the oldest (counted) while `max` are
    /// open; returns what closes the new one.
    pub(super) fn admit(&self, max: usize, nissa: &Nissa) -> oneshot::Receiver<()> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        // Connections that ended by themselves dropped their receivers.
        open.retain(|sender| !sender.is_closed());
        while open.len() >= max.max(1) {
            if let Some(oldest) = open.pop_front() {
                let _ = oldest.send(());
                nissa.count_http_shed(HttpShed::ConnectionEvicted);
            }
        }
        let (close, closed) = oneshot::channel();
        open.push_back(close);
        closed
    }
}

/// One connection's requests in flight, for its idle keep-alive timeout.
#[derive(Debug)]
pub(super) struct KeepAlive {
    in_flight: AtomicUsize,
    /// Bumped at every request's start and end.
    activity: watch::Sender<u64>,
}

/// Marks a request in flight until dropped.
pub(super) struct InFlight(Arc<KeepAlive>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.activity.send_modify(|count| *count = count.wrapping_add(1));
    }
}

impl KeepAlive {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self { in_flight: AtomicUsize::new(0), activity: watch::Sender::new(0) })
    }

    /// A request starts; it is in flight until the guard drops.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.activity.send_modify(|count| *count = count.wrapping_add(1));
        InFlight(Arc::clone(self))
    }

    /// Resolves once the connection has answered a request and then sat with
    /// none in flight for `timeout`. Before the first request it never
    /// resolves: the header-read timeout governs a connection that has not
    /// yet sent one.
    pub(super) async fn idle_for(&self, timeout: Duration) {
        let mut activity = self.activity.subscribe();
        loop {
            let answered_one = *activity.borrow_and_update() > 0;
            if answered_one && self.in_flight.load(Ordering::Relaxed) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => return,
                    changed = activity.changed() => if changed.is_err() { return },
                }
            } else if activity.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Refuses a request body over `max_request_bytes` (413, counted): a declared
/// length at once; a streamed one as it arrives, the moment it passes the limit,
/// without buffering it or waiting for its end. A body within the limit is
/// drained (no handler reads one) and the request routed.
pub(super) async fn limit_body(State(nissa): State<Nissa>, request: Request, next: Next) -> Response {
    let limit = nissa.config().max_request_bytes;
    let headers = request.headers();
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return too_large(&nissa, limit);
    }
    let (parts, mut body) = request.into_parts();
    let mut received: u64 = 0;
    while let Some(frame) = std::future::poll_fn(|context| std::pin::Pin::new(&mut body).poll_frame(context)).await {
        match frame {
            Ok(frame) => {
                let length = frame.data_ref().map_or(0, |data| data.len());
                received = received.saturating_add(u64::try_from(length).unwrap_or(u64::MAX));
                if received > limit {
                    return too_large(&nissa, limit);
                }
            }
            Err(_) => return (StatusCode::BAD_REQUEST, "the request body could not be read\n").into_response(),
        }
    }
    next.run(Request::from_parts(parts, Body::empty())).await
}

fn too_large(nissa: &Nissa, limit: u64) -> Response {
    nissa.count_http_shed(HttpShed::BodyTooLarge);
    (StatusCode::PAYLOAD_TOO_LARGE, format!("request bodies are limited to {limit} bytes\n")).into_response()
}
