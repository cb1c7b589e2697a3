//! Nissa's HTTP server sheds abuse on real loopback sockets: a slowloris client is
//! cut at the header-read timeout while `/healthz` keeps answering others fast, and
//! 2,000 idle connections are capped without locking anyone out.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "the test measures wall-clock latency")]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use esper_core::clock::UnixClock;
use esper_core::net::{Listener, TokioListener};
use esper_core::nissa::{HttpStats, Nissa, NissaConfig, serve_http_counted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every test ends within this or fails.
const TEST_BOUND: Duration = Duration::from_secs(30);

/// Starts Nissa's HTTP on a free loopback port; returns the port and its counters.
async fn serve(config: NissaConfig) -> (u16, Arc<HttpStats>) {
    let listener = TokioListener::bind_addr(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let port = Listener::local_addr(&listener).expect("address").port();
    let nissa = Nissa::new(config, UnixClock::anchored_at(1_767_225_600_000)).expect("nissa");
    let stats = Arc::new(HttpStats::default());
    tokio::spawn(serve_http_counted(listener, port, nissa, Arc::clone(&stats)));
    (port, stats)
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
        assert_eq!(stats.header_timeouts.load(Ordering::Relaxed), 0, "the slow client is still connected");
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
    assert_eq!(stats.header_timeouts.load(Ordering::Relaxed), 1);
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
        while stats.evicted_connections.load(Ordering::Relaxed) < 2_000 - 256 {
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
    assert_eq!(stats.evicted_connections.load(Ordering::Relaxed), 2_000 + 1 - 256);
    assert!(newest_open >= 99, "the newest idle connections keep their slots: {newest_open} of 100");
}
