//! Nissa's HTTP endpoints (axum, HTTP/1.1) over the [`Connector`] seam.
//!
//! * `GET /metrics` — Prometheus text exposition;
//! * `GET /healthz` — liveness: 200 while Nissa answers, with Redis and ingest status;
//! * `GET /readyz` — 200 when Redis answered the last round and the consumer
//!   groups exist, 503 otherwise;
//! * `GET /metrics/summary` — JSON: firing alerts, SLO burn rates, notifications.
//!
//! No endpoint takes a body, so any request declaring one over
//! `max_request_bytes` is refused with 413 before routing, and one streamed
//! without a length with 411 (no handler reads a body, so nothing is buffered);
//! hyper itself answers oversized heads with 431.
//!
//! Connections are bounded: a request head must arrive within
//! `http_header_read_timeout` of the connection opening (hyper's
//! `header_read_timeout`), and at `http_max_connections` a new connection closes
//! the oldest one, so neither a slowloris client nor a flood of idle sockets
//! (kept-alive ones included) can keep `/healthz` from answering.
//! Both are counted ([`HttpStats`]) and logged.
//!
//! Responses carry no `Date` header: hyper would stamp one from the wall clock,
//! which under the sim puts the host's real time into simulated traffic, so the
//! connections are served by hyper directly with `auto_date_header(false)`
//! rather than through `axum::serve`, which has no such switch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::Listener as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::oneshot;

use super::state::Nissa;
use crate::net::{AxumListener, Connector, Listener};

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes, with the request-size guard.
pub fn router(nissa: Nissa) -> Router {
    let limit = nissa.config().max_request_bytes;
    Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/summary", get(summary))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(from_fn_with_state(limit, limit_body))
        .with_state(nissa)
}

/// Serves `nissa` on its configured port until the listener fails.
pub async fn serve_http<C: Connector>(connector: &C, nissa: Nissa) -> std::io::Result<()> {
    let port = nissa.config().port;
    let listener = connector.bind(port).await?;
    serve_http_on(listener, port, nissa).await
}

/// What Nissa's HTTP server shed, readable while it runs.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections closed for not sending a request head in time.
    pub header_timeouts: AtomicU64,
    /// Connections closed to make room at `http_max_connections`.
    pub evicted_connections: AtomicU64,
}

/// Serves `nissa` on a listener the caller bound (`esper up` binds
/// `--nissa-addr`, possibly port 0, and announces the address first). Each
/// connection is its own task, as under `axum::serve`; accept errors are retried.
pub async fn serve_http_on<L: Listener>(listener: L, port: u16, nissa: Nissa) -> std::io::Result<()> {
    serve_http_counted(listener, port, nissa, Arc::default()).await
}

/// [`serve_http_on`], counting what it sheds in `stats`.
pub async fn serve_http_counted<L: Listener>(
    listener: L,
    port: u16,
    nissa: Nissa,
    stats: Arc<HttpStats>,
) -> std::io::Result<()> {
    tracing::info!(port, "nissa: HTTP listening");
    let (header_timeout, max_connections) =
        (nissa.config().http_header_read_timeout, nissa.config().http_max_connections.max(1));
    let mut listener = AxumListener::new(listener, port);
    let service = TowerToHyperService::new(router(nissa));
    // Open connections, oldest first; each sender closes its connection.
    let open: Arc<Mutex<VecDeque<oneshot::Sender<()>>>> = Arc::default();
    loop {
        let (stream, _peer) = listener.accept().await;
        let closed = admit(&open, max_connections, &stats);
        let connection = http1::Builder::new()
            .auto_date_header(false)
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service.clone());
        let stats = Arc::clone(&stats);
        // A connection that ends in an error (a peer that hung up mid-request) is
        // that peer's business; like `axum::serve`, nothing is reported, which also
        // keeps it out of the sim's trace — except a header timeout, which is shed load.
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if ended.is_err_and(|error| error.is_timeout()) {
                        stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("nissa.http.header_read_timeout");
                    }
                }
                _ = closed => {}
            }
        });
    }
}

/// Registers a new connection, closing the oldest when `max` are open; returns
/// what closes the new one.
fn admit(open: &Mutex<VecDeque<oneshot::Sender<()>>>, max: usize, stats: &HttpStats) -> oneshot::Receiver<()> {
    let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
    // Connections that ended by themselves dropped their receivers.
    open.retain(|sender| !sender.is_closed());
    while open.len() >= max {
        if let Some(oldest) = open.pop_front() {
            let _ = oldest.send(());
            stats.evicted_connections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(max, "nissa.http.connection_evicted");
        }
    }
    let (close, closed) = oneshot::channel();
    open.push_back(close);
    closed
}

async fn limit_body(State(limit): State<u64>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("request bodies are limited to {limit} bytes\n"))
            .into_response();
    }
    if declared.is_none() && headers.contains_key(header::TRANSFER_ENCODING) {
        return (StatusCode::LENGTH_REQUIRED, "request bodies need a Content-Length\n").into_response();
    }
    next.run(request).await
}

async fn metrics(State(nissa): State<Nissa>) -> Response {
    let mut response = Response::new(Body::from(nissa.render_metrics()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    response
}

async fn summary(State(nissa): State<Nissa>) -> Response {
    json(StatusCode::OK, &nissa.summary())
}

async fn healthz(State(nissa): State<Nissa>) -> Response {
    json(StatusCode::OK, &nissa.liveness())
}

async fn readyz(State(nissa): State<Nissa>) -> Response {
    let ready = nissa.ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, &serde_json::json!({ "ready": ready }))
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the response: {error}\n")).into_response()
        }
    }
}
