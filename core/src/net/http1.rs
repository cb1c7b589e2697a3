//! A small HTTP/1.1 client over the [`Connector`] seam.
//!
//! Nissa's document index talks to an Elasticsearch-compatible server, and the
//! scenarios and tests read Nissa's own endpoints; both need a few requests, not
//! a connection pool. One request per connection (`Connection: close`) keeps it
//! small: write the request, read to the end (bounded), parse with `httparse`.
//! Because it goes through the seam, the same client works on tokio TCP and on
//! turmoil's simulated network.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Connector;

/// Most response headers read.
const MAX_HEADERS: usize = 64;

/// One request.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRequest<'a> {
    /// `GET`, `POST`, `PUT`…
    pub method: &'a str,
    /// Path and query, starting with `/`.
    pub path: &'a str,
    /// Extra header lines (`Host`, `Connection` and `Content-Length` are written for you).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body; sent with its `Content-Length` when not empty.
    pub body: &'a [u8],
}

impl<'a> HttpRequest<'a> {
    /// A `GET path`.
    pub fn get(path: &'a str) -> Self {
        Self { method: "GET", path, ..Self::default() }
    }
}

/// Bounds on one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connect, send and read all within this.
    pub timeout: Duration,
    /// Largest response (head and body) read.
    pub max_response_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), max_response_bytes: 4 << 20 }
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request got no usable response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP {method} {host}:{port}{path}: {source}")]
    Io {
        method: String,
        host: String,
        port: u16,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP {method} {host}:{port}{path}: no complete response within {timeout:?}")]
    Timeout { method: String, host: String, port: u16, path: String, timeout: Duration },
    #[error("HTTP response is larger than the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("HTTP response is malformed: {detail}")]
    Malformed { detail: String },
}

/// Sends `request` to `host:port` and reads the whole response.
pub async fn request<C: Connector>(
    connector: &C,
    host: &str,
    port: u16,
    request: &HttpRequest<'_>,
    limits: HttpLimits,
) -> Result<HttpResponse, HttpError> {
    let io = |source| HttpError::Io {
        method: request.method.to_owned(),
        host: host.to_owned(),
        port,
        path: request.path.to_owned(),
        source,
    };
    let exchange = async {
        let mut stream = connector.connect(host, port).await.map_err(io)?;
        stream.write_all(&encode_request(host, port, request)).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut raw = Vec::new();
        let cap = u64::try_from(limits.max_response_bytes).unwrap_or(u64::MAX).saturating_add(1);
        (&mut stream).take(cap).read_to_end(&mut raw).await.map_err(io)?;
        Ok::<_, HttpError>(raw)
    };
    let raw = tokio::time::timeout(limits.timeout, exchange).await.map_err(|_elapsed| HttpError::Timeout {
        method: request.method.to_owned(),
        host: host.to_owned(),
        port,
        path: request.path.to_owned(),
        timeout: limits.timeout,
    })??;
    if raw.len() > limits.max_response_bytes {
        return Err(HttpError::TooLarge { limit: limits.max_response_bytes });
    }
    parse_response(&raw)
}

/// The request's bytes: request line, headers, blank line, body.
fn encode_request(host: &str, port: u16, request: &HttpRequest<'_>) -> Vec<u8> {
    let mut head =
        format!("{} {} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n", request.method, request.path);
    for (name, value) in request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || matches!(request.method, "POST" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(request.body);
    bytes
}

/// Parses a complete response read until the server closed the connection.
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse, HttpError> {
    let malformed = |detail: String| HttpError::Malformed { detail };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw).map_err(|error| malformed(error.to_string()))? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => {
            return Err(malformed(format!("connection closed inside the head ({} bytes)", raw.len())));
        }
    };
    let status = response.code.ok_or_else(|| malformed("no status code".to_owned()))?;
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|header| (header.name.to_ascii_lowercase(), String::from_utf8_lossy(header.value).into_owned()))
        .collect();
    let rest = raw.get(head_len..).unwrap_or_default();
    let find = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim());
    let body = if find("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|_| malformed(format!("bad Content-Length {length:?}")))?;
        let body =
            rest.get(..length).ok_or_else(|| malformed(format!("body cut at {} of {length} bytes", rest.len())))?;
        body.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, headers, body })
}

/// Joins the chunks of a `Transfer-Encoding: chunked` body.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, HttpError> {
    let malformed = |detail: &str| HttpError::Malformed { detail: format!("chunked body: {detail}") };
    let mut body = Vec::new();
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Err(malformed("cut inside a chunk size")),
            Err(_) => return Err(malformed("bad chunk size")),
        };
        if size == 0 {
            return Ok(body);
        }
        let size = usize::try_from(size).map_err(|_| malformed("chunk larger than memory"))?;
        let chunk = rest.get(consumed..consumed.saturating_add(size)).ok_or_else(|| malformed("cut inside a chunk"))?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(consumed + size..)
            .and_then(|after| after.strip_prefix(b"\r\n"))
            .ok_or_else(|| malformed("chunk not followed by CRLF"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_bodies() {
        let plain = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA").expect("valid");
        assert_eq!((plain.status, plain.text(), plain.header("x-a")), (200, "hello".to_owned(), Some("b")));
        let chunked = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("valid");
        assert_eq!((chunked.status, chunked.text()), (201, "abcde".to_owned()));
    }

    #[test]
    fn refuses_cut_and_garbage_responses() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Len"[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
        ] {
            assert!(matches!(parse_response(raw), Err(HttpError::Malformed { .. })), "{raw:?}");
        }
        let cut_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc";
        assert!(matches!(parse_response(cut_chunk), Err(HttpError::Malformed { .. })));
    }

    #[test]
    fn request_carries_length_and_extra_headers() {
        let request = HttpRequest {
            method: "POST",
            path: "/_bulk",
            headers: &[("Content-Type", "application/x-ndjson")],
            body: b"{}\n",
        };
        let text = String::from_utf8(encode_request("es", 9200, &request)).expect("ascii");
        assert_eq!(
            text,
            "POST /_bulk HTTP/1.1\r\nHost: es:9200\r\nConnection: close\r\nContent-Type: application/x-ndjson\r\nContent-Length: 3\r\n\r\n{}\n"
        );
    }
}
