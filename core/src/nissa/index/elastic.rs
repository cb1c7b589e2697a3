//! An Elasticsearch-compatible index over the [`Connector`] seam.
//!
//! A batch goes out as one `POST /_bulk` (NDJSON, an `index` action with the
//! document id per document). If the server refuses the bulk request or reports
//! item errors, each document is sent again on its own (`PUT /<index>/_doc/<id>`)
//! — Esper-Lite's bulk-then-per-document fallback — and the ones that still fail
//! are reported.

use std::fmt::Write as _;

use super::{Document, DocumentIndex, IndexError};
use crate::net::Connector;
use crate::net::http1::{HttpLimits, HttpRequest, HttpResponse, request};

/// Longest excerpt of an error body kept in an [`IndexError`].
const DETAIL_CHARS: usize = 200;

/// An Elasticsearch-compatible server at `host:port`.
#[derive(Debug, Clone)]
pub struct ElasticIndex<C: Connector> {
    connector: C,
    host: String,
    port: u16,
    limits: HttpLimits,
}

impl<C: Connector> ElasticIndex<C> {
    /// A client for the server at `host:port`, each request bounded by `limits`.
    pub fn new(connector: C, host: &str, port: u16, limits: HttpLimits) -> Self {
        Self { connector, host: host.to_owned(), port, limits }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<HttpResponse, IndexError> {
        let headers = [("Content-Type", content_type)];
        let http = HttpRequest { method, path, headers: &headers, body };
        Ok(request(&self.connector, &self.host, self.port, &http, self.limits).await?)
    }

    /// One document on its own; `Err` carries status and detail.
    async fn index_one(&self, document: &Document) -> Result<(), IndexError> {
        let body = document.body.to_string();
        let response = if document.id.is_empty() {
            self.send("POST", &format!("/{}/_doc", document.index.as_str()), "application/json", body.as_bytes())
                .await?
        } else {
            let path = format!("/{}/_doc/{}", document.index.as_str(), path_segment(&document.id));
            self.send("PUT", &path, "application/json", body.as_bytes()).await?
        };
        if response.is_success() {
            return Ok(());
        }
        Err(IndexError::Refused { failed: vec![0], total: 1, status: response.status, detail: excerpt(&response) })
    }
}

impl<C: Connector> DocumentIndex for ElasticIndex<C> {
    fn backend(&self) -> &'static str {
        "elasticsearch"
    }

    async fn index_batch(&mut self, documents: &[Document]) -> Result<(), IndexError> {
        if documents.is_empty() {
            return Ok(());
        }
        let bulk = self.send("POST", "/_bulk", "application/x-ndjson", bulk_body(documents).as_bytes()).await?;
        if bulk.is_success() && !has_item_errors(&bulk) {
            return Ok(());
        }
        tracing::warn!(
            status = bulk.status,
            documents = documents.len(),
            "nissa: bulk index refused; indexing one by one"
        );
        let mut failed = Vec::new();
        let mut last = (bulk.status, excerpt(&bulk));
        for (position, document) in documents.iter().enumerate() {
            match self.index_one(document).await {
                Ok(()) => {}
                Err(IndexError::Refused { status, detail, .. }) => {
                    failed.push(position);
                    last = (status, detail);
                }
                Err(unreachable) => return Err(unreachable),
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(IndexError::Refused { failed, total: documents.len(), status: last.0, detail: last.1 })
    }
}

/// The NDJSON body of a bulk request: an action line, then the document, per document.
fn bulk_body(documents: &[Document]) -> String {
    let mut body = String::new();
    for document in documents {
        let mut action = serde_json::json!({ "_index": document.index.as_str() });
        if !document.id.is_empty() {
            action["_id"] = serde_json::Value::String(document.id.clone());
        }
        let _infallible = writeln!(body, "{}", serde_json::json!({ "index": action }));
        let _infallible = writeln!(body, "{}", document.body);
    }
    body
}

/// Whether a bulk response says some items failed (`"errors": true`). An
/// unreadable body counts as failed, so the per-document path decides.
fn has_item_errors(response: &HttpResponse) -> bool {
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .map_or(true, |reply| reply.get("errors").and_then(serde_json::Value::as_bool) != Some(false))
}

fn excerpt(response: &HttpResponse) -> String {
    response.text().chars().take(DETAIL_CHARS).collect()
}

/// `id` percent-encoded for a URL path segment (unreserved characters kept).
fn path_segment(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _infallible = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nissa::index::IndexName;

    #[test]
    fn bulk_body_pairs_actions_and_documents() {
        let documents = [
            Document { index: IndexName::Telemetry, id: "t-1".into(), body: serde_json::json!({"a": 1}) },
            Document { index: IndexName::FieldReport, id: String::new(), body: serde_json::json!({"b": 2}) },
        ];
        assert_eq!(
            bulk_body(&documents),
            "{\"index\":{\"_id\":\"t-1\",\"_index\":\"telemetry\"}}\n{\"a\":1}\n{\"index\":{\"_index\":\"field_report\"}}\n{\"b\":2}\n"
        );
        assert_eq!(path_segment("run/7 e#1"), "run%2F7%20e%231");
    }
}
