//! Reading a running Nissa over HTTP, as an operator (or Prometheus) would.

use std::time::Duration;

use esper_core::net::Connector;
use esper_core::net::http1::{HttpLimits, HttpRequest, HttpResponse, request};
use serde_json::Value;

/// Pause between polls while waiting for Nissa to catch up.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Nissa at `host:port`, through a connector.
#[derive(Debug, Clone)]
pub struct Probe<C> {
    pub connector: C,
    pub host: String,
    pub port: u16,
}

impl<C: Connector> Probe<C> {
    /// Sends `http` and returns the response.
    pub async fn send(&self, http: &HttpRequest<'_>) -> Result<HttpResponse, String> {
        let limits = HttpLimits { timeout: Duration::from_secs(5), ..HttpLimits::default() };
        request(&self.connector, &self.host, self.port, http, limits).await.map_err(|error| error.to_string())
    }

    /// `GET path`, requiring 2xx.
    pub async fn get(&self, path: &str) -> Result<HttpResponse, String> {
        let response = self.send(&HttpRequest::get(path)).await?;
        if !response.is_success() {
            return Err(format!("GET {path}: HTTP {}: {}", response.status, response.text()));
        }
        Ok(response)
    }

    /// `GET /metrics/summary` as JSON.
    pub async fn summary(&self) -> Result<Value, String> {
        let response = self.get("/metrics/summary").await?;
        serde_json::from_slice(&response.body).map_err(|error| format!("/metrics/summary is not JSON: {error}"))
    }

    /// Polls `/metrics/summary` until `done` holds, at most `polls` times.
    pub async fn wait_for(&self, what: &str, polls: u32, done: impl Fn(&Value) -> bool) -> Result<Value, String> {
        let mut last = Value::Null;
        for _ in 0..polls {
            match self.summary().await {
                Ok(summary) if done(&summary) => return Ok(summary),
                Ok(summary) => last = summary,
                Err(error) => last = Value::String(error),
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        Err(format!("gave up waiting for {what} after {polls} polls; last summary: {last}"))
    }

    /// Waits until Nissa has ingested `count` telemetry packets in all.
    pub async fn wait_ingested(&self, count: u64) -> Result<Value, String> {
        self.wait_for(&format!("{count} telemetry packets ingested"), 2_000, |summary| {
            telemetry_packets(summary) >= count
        })
        .await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, polls: u32) -> Result<(), String> {
        for _ in 0..polls {
            if self.send(&HttpRequest::get("/readyz")).await.is_ok_and(|response| response.status == 200) {
                return Ok(());
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        Err(format!("Nissa was not ready after {polls} polls"))
    }
}

/// `ingest.telemetry_packets` of a summary.
pub fn telemetry_packets(summary: &Value) -> u64 {
    summary["ingest"]["telemetry_packets"].as_u64().unwrap_or(0)
}

/// Whether `alert` is firing in a summary.
pub fn firing(summary: &Value, alert: &str) -> bool {
    summary["alerts"].get(alert).is_some()
}
