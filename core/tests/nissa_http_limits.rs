//! Nissa's HTTP server sheds abuse on real loopback sockets: a slowloris client is
//! cut at the header-read timeout while `/healthz` keeps answering others fast, and
//! 2,000 idle connections are capped without locking anyone out; an endless
//! chunked upload is refused (413) while it streams; an idle kept-alive
//! connection is closed at the keep-alive timeout; and every cut is counted in
//! a `/metrics` scrape.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "the test measures wall-clock latency")]

use std::time::{Duration, Instant};

use esper_core::clock::UnixClock;
use esper_core::net::{Listener, TokioListener};
use esper_core::nissa::{HttpShed, Nissa, NissaConfig, serve_http_on};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every test ends within this or fails.
const TEST_BOUND: Duration = Duration::from_secs(30);

/// Starts Nissa's HTTP on a free loopback port; returns the port and Nissa (its counters).
async fn serve(config: NissaConfig) -> (u16, Nissa) {
    let listener = TokioListener::bind_addr(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let port = Listener::local_addr(&listener).expect("address").port();
    let nissa = Nissa::new(config, UnixClock::anchored_at(1_767_225_600_000)).expect("nissa");
    tokio::spawn(serve_http_on(listener, port, nissa.clone()));
    (port, nissa)
}

/// One `GET /healthz` on a fresh connection: its status line and how long it took.
async fn healthz(port: u16) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: nissa\r\nConnection: close\r\n\r\n").await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    (text.lines().next().unwrap_or_default().to_owned(), took)
}

/// Whether the server has closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0_u8; 256];
    loop {
        match tokio::time::timeout(within, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A client sending its request head one byte a second is cut at the 2 s header
/// timeout (counted), and while it is still trickling `/healthz` answers another
/// client in under 50 ms (best of five, each measured while the trickle is on).
#[tokio::test]
async fn a_slowloris_client_is_cut_at_the_header_timeout_while_healthz_answers_fast() {
    let config = NissaConfig { http_header_read_timeout: Duration::from_secs(2), ..NissaConfig::default() };
    let (port, stats) = serve(config).await;
    let bounded = tokio::time::timeout(TEST_BOUND, async {
        let mut slow = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let opened = Instant::now();
        slow.write_all(b"G").await.expect("first byte");
        let mut fastest = Duration::MAX;
        for _ in 0..5 {
            let (status, took) = healthz(port).await;
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            fastest = fastest.min(took);
        }
        assert!(opened.elapsed() < Duration::from_secs(2), "the healthz samples were taken while the trickle was on");
        assert_eq!(stats.http_shed(HttpShed::HeaderTimeout), 0, "the slow client is still connected");
        assert!(fastest < Duration::from_millis(50), "/healthz took {fastest:?} beside a slowloris client");
        let mut sent = 1;
        for byte in b"ET /healthz HTTP/1.1\r\n" {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
        }
        assert!(closed_within(&mut slow, Duration::from_secs(5)).await, "the slow client was cut");
        (sent, opened.elapsed())
    });
    let (sent, cut_after) = bounded.await.expect("within the test bound");
    assert!(sent < 5, "cut after {sent} bytes, {cut_after:?}");
    assert_eq!(stats.http_shed(HttpShed::HeaderTimeout), 1);
}

/// 2,000 idle connections against a 256-connection cap: each one past the cap
/// closes the oldest (counted), and `/healthz` is still answered.
#[tokio::test]
async fn two_thousand_idle_connections_are_capped_and_healthz_still_answers() {
    let config = NissaConfig { http_header_read_timeout: Duration::from_secs(60), ..NissaConfig::default() };
    let (port, stats) = serve(config).await;
    let bounded = tokio::time::timeout(TEST_BOUND, async {
        let mut idle = Vec::new();
        for _ in 0..2_000 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
        }
        while stats.http_shed(HttpShed::ConnectionEvicted) < 2_000 - 256 {
            tokio::task::yield_now().await;
        }
        let (status, _) = healthz(port).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut still_open = 0;
        for stream in idle.iter_mut().rev().take(100) {
            if !closed_within(stream, Duration::from_millis(1)).await {
                still_open += 1;
            }
        }
        still_open
    });
    let newest_open = bounded.await.expect("within the test bound");
    assert_eq!(stats.http_shed(HttpShed::ConnectionEvicted), 2_000 + 1 - 256);
    assert!(newest_open >= 99, "the newest idle connections keep their slots: {newest_open} of 100");
}

/// A chunked upload that never ends is refused with 413 as soon as it passes
/// the 1 KiB limit: the answer comes while the body is still open (its last
/// chunk is never sent), so the limit is enforced while reading, not after.
#[tokio::test]
async fn an_endless_chunked_body_is_refused_413_while_it_streams() {
    let (port, nissa) = serve(NissaConfig { max_request_bytes: 1_024, ..NissaConfig::default() }).await;
    let bounded = tokio::time::timeout(TEST_BOUND, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let head = "POST /metrics HTTP/1.1\r\nHost: nissa\r\nTransfer-Encoding: chunked\r\n\r\n";
        stream.write_all(head.as_bytes()).await.expect("head");
        let chunk = format!("100\r\n{}\r\n", "x".repeat(256));
        // 5 chunks of 256 bytes pass the limit; the body is never terminated.
        for _ in 0..5 {
            stream.write_all(chunk.as_bytes()).await.expect("chunk");
        }
        let mut answer = [0_u8; 64];
        let read = stream.read(&mut answer).await.expect("an answer while the body is open");
        String::from_utf8_lossy(&answer[..read]).lines().next().unwrap_or_default().to_owned()
    });
    let status = bounded.await.expect("answered while the upload was still open");
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(nissa.http_shed(HttpShed::BodyTooLarge), 1);
    let (healthz, _) = healthz(port).await;
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
}

/// A kept-alive connection that answered one request and then sends nothing is
/// closed at the 200 ms keep-alive timeout (counted), not at the 10 s header
/// timeout; one that keeps asking every 100 ms stays open past it (400 ms).
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_timeout() {
    let timeout = Duration::from_millis(200);
    let (port, nissa) = serve(NissaConfig { http_keep_alive_timeout: timeout, ..NissaConfig::default() }).await;
    let bounded = tokio::time::timeout(TEST_BOUND, async {
        let mut busy = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        for _ in 0..4 {
            assert!(keep_alive_get(&mut busy).await.starts_with("HTTP/1.1 200"));
            tokio::time::sleep(timeout / 2).await;
        }
        let mut idle = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        assert!(keep_alive_get(&mut idle).await.starts_with("HTTP/1.1 200"));
        let answered = Instant::now();
        assert!(!closed_within(&mut idle, timeout / 2).await, "open before the timeout");
        assert!(closed_within(&mut idle, timeout * 5).await, "closed after the timeout");
        answered.elapsed()
    });
    let idle_for = bounded.await.expect("within the test bound");
    assert!(idle_for >= timeout && idle_for < Duration::from_secs(2), "closed after {idle_for:?}");
    // The busy connection went idle too once it stopped asking, before the idle one.
    assert_eq!(nissa.http_shed(HttpShed::IdleTimeout), 2, "each connection closed once, when idle");
    assert_eq!(nissa.http_shed(HttpShed::HeaderTimeout), 0);
}

/// Every kind of shed load shows in a `/metrics` scrape with its count.
#[tokio::test]
async fn every_shed_counter_shows_in_a_metrics_scrape() {
    let config = NissaConfig {
        http_header_read_timeout: Duration::from_millis(300),
        http_keep_alive_timeout: Duration::from_millis(100),
        http_max_connections: 4,
        max_request_bytes: 16,
        ..NissaConfig::default()
    };
    let (port, nissa) = serve(config).await;
    let bounded = tokio::time::timeout(TEST_BOUND, async {
        let mut kept = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        keep_alive_get(&mut kept).await;
        let mut slow = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        slow.write_all(b"G").await.expect("one byte");
        let mut big = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        big.write_all(b"POST /healthz HTTP/1.1\r\nHost: nissa\r\nContent-Length: 17\r\n\r\n").await.expect("send");
        assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
        assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
        let mut flood = Vec::new();
        for _ in 0..5 {
            flood.push(TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
        }
        while nissa.http_shed(HttpShed::ConnectionEvicted) == 0 {
            tokio::task::yield_now().await;
        }
        scrape(port).await
    });
    let text = bounded.await.expect("within the test bound");
    for reason in ["header_timeout", "connection_evicted", "idle_timeout", "body_too_large"] {
        let line =
            text.lines().find(|line| line.starts_with(&format!("esper_nissa_http_shed_total{{reason=\"{reason}\"}}")));
        let count: u64 = line.and_then(|line| line.rsplit(' ').next()?.parse().ok()).unwrap_or(0);
        assert!(count >= 1, "{reason} not counted in the scrape:\n{text}");
    }
}

/// One keep-alive `GET /healthz` on `stream`: its status line (the answer is read
/// to its `Content-Length`, so the connection stays usable).
async fn keep_alive_get(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: nissa\r\n\r\n").await.expect("send");
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4_096];
    loop {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "closed mid-answer");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase().strip_prefix("content-length:")?.trim().parse::<usize>().ok()
                })
                .unwrap_or(0);
            if body.len() >= length {
                return head.lines().next().unwrap_or_default().to_owned();
            }
        }
    }
}

/// `GET /metrics` on a fresh connection: the body.
async fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: nissa\r\nConnection: close\r\n\r\n").await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}
