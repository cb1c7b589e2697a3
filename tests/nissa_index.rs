//! Nissa's document index against a tiny Elasticsearch stand-in that records
//! every request: bulk first, one by one when the bulk fails, memory for what
//! the server will not take — and, end to end, ingested packets reaching it.

mod support;

use std::sync::{Arc, Mutex};

use esper_core::leyline::{BusEnvelope, MessagePriority, MetricPoint, TelemetryPacket};
use esper_core::net::http1::HttpLimits;
use esper_core::net::{Connector, Listener, TokioConnector};
use esper_core::nissa::index::{Document, ElasticIndex, IndexName};
use esper_core::nissa::{IndexUrl, Nissa, NissaConfig};
use esper_sim::redis::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    method: String,
    path: String,
    body: String,
}

type Answer = dyn Fn(&Recorded) -> (u16, &'static str) + Send + Sync;

/// Serves on a free loopback port, answering with `answer`; returns the port and
/// the log of requests.
async fn stand_in(answer: Box<Answer>) -> (u16, Arc<Mutex<Vec<Recorded>>>) {
    let mut listener = TokioConnector.bind(0).await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (answer, seen) = (Arc::<Answer>::from(answer), Arc::clone(&log));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let Some(request) = read_request(&mut stream).await else { continue };
            let (status, body) = answer(&request);
            seen.lock().expect("log").push(request);
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _sent = stream.write_all(reply.as_bytes()).await;
        }
    });
    (port, log)
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await.ok().filter(|read| *read > 0)?;
        raw.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().ok()))
        .flatten()
        .unwrap_or(0);
    while raw.len() < head_end + length {
        let read = stream.read(&mut chunk).await.ok().filter(|read| *read > 0)?;
        raw.extend_from_slice(&chunk[..read]);
    }
    let mut words = head.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let body = String::from_utf8_lossy(&raw[head_end..head_end + length]).into_owned();
    Some(Recorded { method, path, body })
}

fn nissa() -> Nissa {
    Nissa::new(NissaConfig::default(), esper_core::clock::UnixClock::anchored_at(0)).expect("valid rules")
}

fn elastic(port: u16) -> ElasticIndex<TokioConnector> {
    ElasticIndex::new(TokioConnector, "127.0.0.1", port, HttpLimits::default())
}

fn documents() -> Vec<Document> {
    vec![
        Document { index: IndexName::Telemetry, id: "t-1".into(), body: serde_json::json!({"packet_id": "t-1"}) },
        Document { index: IndexName::FieldReport, id: "fr/1".into(), body: serde_json::json!({"report_id": "fr/1"}) },
    ]
}

#[tokio::test]
async fn a_batch_goes_out_as_one_bulk_request() {
    let (port, log) = stand_in(Box::new(|_| (200, r#"{"errors":false,"items":[]}"#))).await;
    let mut router = nissa().index_router(Some(elastic(port)));
    router.store(documents()).await;
    let log = log.lock().expect("log").clone();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].method.as_str(), log[0].path.as_str()), ("POST", "/_bulk"));
    let lines: Vec<&str> = log[0].body.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"index":{"_id":"t-1","_index":"telemetry"}}"#,
            r#"{"packet_id":"t-1"}"#,
            r#"{"index":{"_id":"fr/1","_index":"field_report"}}"#,
            r#"{"report_id":"fr/1"}"#,
        ]
    );
    let status = router.status();
    assert_eq!((status.backend.as_str(), status.indexed, status.fallback_active), ("elasticsearch", 2, false));
    assert!(status.memory_documents.is_empty());
}

#[tokio::test]
async fn item_errors_fall_back_to_one_by_one_and_refusals_to_memory() {
    let (port, log) = stand_in(Box::new(|request| match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/_bulk") => (200, r#"{"errors":true}"#),
        ("PUT", "/telemetry/_doc/t-1") => (201, "{}"),
        _ => (400, r#"{"error":"mapper_parsing_exception"}"#),
    }))
    .await;
    let mut router = nissa().index_router(Some(elastic(port)));
    router.store(documents()).await;
    let paths: Vec<String> = log.lock().expect("log").iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, ["POST /_bulk", "PUT /telemetry/_doc/t-1", "PUT /field_report/_doc/fr%2F1"]);
    let status = router.status();
    assert_eq!((status.indexed, status.fallback_active), (1, true));
    assert_eq!(status.memory_documents.get(&IndexName::FieldReport), Some(&1));
    let kept: Vec<&str> = router.memory().documents(IndexName::FieldReport).map(|doc| doc.id.as_str()).collect();
    assert_eq!(kept, ["fr/1"]);
}

#[tokio::test]
async fn an_unreachable_server_sends_documents_to_memory_until_it_answers_again() {
    let (port, log) = stand_in(Box::new(|request| {
        if request.body.contains("second") { (200, r#"{"errors":false}"#) } else { (503, "unavailable") }
    }))
    .await;
    let mut router = nissa().index_router(Some(elastic(port)));
    router.store(documents()).await;
    assert!(router.status().fallback_active, "503 everywhere: fallback on");
    assert_eq!(router.status().memory_documents.values().sum::<usize>(), 2);
    let second = Document { index: IndexName::Telemetry, id: "second".into(), body: serde_json::json!({"n": 2}) };
    router.store(vec![second]).await;
    assert!(!router.status().fallback_active, "the server answered: fallback off");
    assert_eq!(router.status().indexed, 1);
    assert_eq!(log.lock().expect("log").len(), 4, "bulk + two single attempts, then one bulk");
}

#[test]
fn ingested_packets_reach_the_configured_index() {
    let redis_port = support::spawn_simulated(ServerConfig::default());
    let runtime = support::runtime::real();
    let (es_port, log) = runtime.block_on(stand_in(Box::new(|_| (200, r#"{"errors":false}"#))));
    let config = NissaConfig {
        elasticsearch: Some(IndexUrl { host: "127.0.0.1".into(), port: es_port }),
        ..NissaConfig::default()
    };
    // The stand-in runs on this test's runtime; Nissa on its own thread.
    let port = support::nissa::spawn(redis_port, config);
    runtime.block_on(async {
        let mut rig = support::nissa::rig(redis_port, port).await;
        let packet = TelemetryPacket {
            packet_id: "indexed-1".to_owned(),
            source_subsystem: "tolaria".to_owned(),
            metrics: vec![MetricPoint::new("tolaria.training.loss", 0.5, "")],
            ..TelemetryPacket::default()
        };
        rig.publish(&BusEnvelope::wrap(&packet, MessagePriority::Normal)).await.expect("published");
        let summary = rig
            .probe
            .wait_for("the packet indexed in Elasticsearch", 1_000, |summary| summary["index"]["indexed"] == 1)
            .await
            .expect("indexed");
        assert_eq!(summary["index"]["backend"], "elasticsearch");
        let bulk = log.lock().expect("log").iter().find(|r| r.path == "/_bulk").cloned().expect("a bulk request");
        assert!(bulk.body.contains(r#""_id":"indexed-1""#) && bulk.body.contains("tolaria.training.loss"), "{bulk:?}");
    });
}
