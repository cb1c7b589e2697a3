//! Nissa's HTTP endpoints (axum, HTTP/1.1) over the [`Connector`] seam.
//!
//! * `GET /metrics` — Prometheus text exposition;
//! * `GET /healthz` — liveness: 200 while Nissa answers, with Redis and ingest status;
//! * `GET /readyz` — 200 when Redis answered the last round and the consumer
//!   groups exist, 503 otherwise;
//! * `GET /metrics/summary` — JSON: firing alerts, SLO burn rates, notifications.
//!
//! Abuse is shed, counted and logged ([`super::http_shed`]): a request head
//! must arrive within `http_header_read_timeout` (hyper's `header_read_timeout`),
//! a kept-alive connection idle past `http_keep_alive_timeout` is closed, at
//! `http_max_connections` a new connection closes the oldest, and a body over
//! `max_request_bytes` gets 413 while it streams in; hyper itself answers
//! oversized heads with 431. So neither a slowloris client, a flood of idle
//! sockets nor an endless upload can keep `/healthz` from answering.
//!
//! Responses carry no `Date` header: hyper would stamp one from the wall clock,
//! which under the sim puts the host's real time into simulated traffic, so the
//! connections are served by hyper directly with `auto_date_header(false)`
//! rather than through `axum::serve`, which has no such switch.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::Listener as _;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use super::http_shed::{ConnectionCap, HttpShed, KeepAlive, limit_body};
use super::state::Nissa;
use crate::net::{AxumListener, Connector, Listener};

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes, with the request-size guard.
pub fn router(nissa: Nissa) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/summary", get(summary))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(from_fn_with_state(nissa.clone(), limit_body))
        .with_state(nissa)
}

/// Serves `nissa` on its configured port until the listener fails.
pub async fn serve_http<C: Connector>(connector: &C, nissa: Nissa) -> std::io::Result<()> {
    let port = nissa.config().port;
    let listener = connector.bind(port).await?;
    serve_http_on(listener, port, nissa).await
}

/// Serves `nissa` on a listener the caller bound (`esper up` binds
/// `--nissa-addr`, possibly port 0, and announces the address first). Each
/// connection is its own task, as under `axum::serve`; accept errors are retried.
/// What it sheds is counted in Nissa's `/metrics` ([`HttpShed`]).
pub async fn serve_http_on<L: Listener>(listener: L, port: u16, nissa: Nissa) -> std::io::Result<()> {
    tracing::info!(port, "nissa: HTTP listening");
    let config = nissa.config();
    let (header_timeout, keep_alive_timeout, max_connections) =
        (config.http_header_read_timeout, config.http_keep_alive_timeout, config.http_max_connections);
    let mut listener = AxumListener::new(listener, port);
    let service = TowerToHyperService::new(router(nissa.clone()));
    let cap = ConnectionCap::default();
    loop {
        let (stream, _peer) = listener.accept().await;
        let closed = cap.admit(max_connections, &nissa);
        let keep_alive = KeepAlive::new();
        let (service, tracked) = (service.clone(), Arc::clone(&keep_alive));
        let counted = service_fn(move |request| {
            let in_flight = tracked.begin();
            let answer = service.call(request);
            async move {
                let answered = answer.await;
                drop(in_flight);
                answered
            }
        });
        let connection = http1::Builder::new()
            .auto_date_header(false)
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), counted);
        let nissa = nissa.clone();
        // A connection that ends in an error (a peer that hung up mid-request) is
        // that peer's business; like `axum::serve`, nothing is reported, which also
        // keeps it out of the sim's trace — except a header timeout, which is shed load.
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if ended.is_err_and(|error| error.is_timeout()) {
                        nissa.count_http_shed(HttpShed::HeaderTimeout);
                    }
                }
                () = keep_alive.idle_for(keep_alive_timeout) => nissa.count_http_shed(HttpShed::IdleTimeout),
                _ = closed => {}
            }
        });
    }
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
