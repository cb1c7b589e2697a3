//! The `nissa` scenario's checks beyond the alert checks: bad input on the bus and on
//! HTTP, and burn rates against a hand-computed example.

use std::time::Duration;

use esper_core::leyline::signing::unsigned;
use esper_core::leyline::{BusEnvelope, BusMessageType, MessagePriority};
use esper_core::net::Connector;
use esper_core::oona::FRAME_FIELD;
use rand::RngCore;
use redis::aio::MultiplexedConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::alert_checks::AlertRig;
use super::probe::Probe;

/// Reads of `/metrics` while waiting for counters to show up.
const METRICS_POLLS: u32 = 500;

/// Malformed and unsigned telemetry is counted and dead-lettered, and ingest
/// goes on: garbage and an unsigned frame fail Oona's verification, a signed
/// envelope whose payload is not a telemetry packet is rejected by Nissa; a
/// valid packet published after them is ingested.
pub async fn bad_envelopes<C: Connector, R: RngCore>(
    rig: &mut AlertRig<C, R>,
    admin: &mut MultiplexedConnection,
    unix_ms: u64,
    rng: &mut impl RngCore,
) -> Result<(), String> {
    let telemetry = rig.bus.config().telemetry_stream.clone();
    let dead_letter = rig.bus.config().dead_letter_stream.clone();
    let garbage_payload = BusEnvelope {
        message_type: BusMessageType::Telemetry.into(),
        payload: vec![0xff; 7],
        priority: MessagePriority::Normal.into(),
        ..BusEnvelope::default()
    };
    let unsigned_frame = unsigned(&garbage_payload, unix_ms, rng);
    for frame in [b"not a frame".to_vec(), unsigned_frame] {
        let add = redis::cmd("XADD").arg(&telemetry).arg("*").arg(FRAME_FIELD).arg(frame).clone();
        add.query_async::<redis::Value>(admin).await.map_err(|error| format!("XADD a bad frame: {error}"))?;
    }
    rig.publish(&garbage_payload).await?;
    let summary = rig.feed(&[("drills.after_bad_input", 1.0)]).await?;
    expect("rejected by Nissa", summary["ingest"]["rejected"].as_u64(), Some(1))?;
    let wanted = [
        "esper_ingest_rejected_total{reason=\"undecodable_telemetry\"} 1",
        "esper_nissa_bus_events_total{event=\"invalid_envelopes\"} 2",
        "esper_nissa_bus_events_total{event=\"handler_rejected\"} 1",
        "esper_nissa_bus_events_total{event=\"dead_letter_total\"} 3",
        "esper_drills_after_bad_input{source=\"drills\"} 1",
    ];
    // The bus counters are mirrored at the end of each ingest pass, a little
    // after the packet itself was ingested.
    let mut missing = Vec::new();
    for _ in 0..METRICS_POLLS {
        let metrics = rig.probe.get("/metrics").await?.text();
        missing = wanted.iter().filter(|line| !metrics.lines().any(|found| found == **line)).collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !missing.is_empty() {
        return Err(format!("/metrics lacks {missing:?}"));
    }
    let depth: i64 =
        redis::cmd("XLEN").arg(&dead_letter).query_async(admin).await.map_err(|error| error.to_string())?;
    expect("dead-letter stream depth", depth, 3)
}

/// Requests too large for Nissa get 4xx and Nissa keeps serving: a declared
/// 10 MB body (413), a chunked body that passes the 64 KiB limit by one byte and
/// never ends (413: refused while it streams), 150 headers (431), a 70 KB path
/// (414). Every case stays within what the server reads before it answers: a server that closes with unread request bytes resets the
/// connection, and the client may never see the answer (TCP, not Nissa).
pub async fn oversized_requests<C: Connector>(probe: &Probe<C>) -> Result<(), String> {
    let many_headers: String = (0..150).map(|n| format!("X-Header-{n}: {n}\r\n")).collect();
    let cases = [
        (
            "declared 10 MB body",
            "POST /metrics HTTP/1.1\r\nHost: nissa\r\nConnection: close\r\nContent-Length: 10000000\r\n\r\n".to_owned(),
            413,
        ),
        (
            "unterminated chunked body one byte over",
            format!(
                "POST /metrics/summary HTTP/1.1\r\nHost: nissa\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n20000\r\n{}",
                "a".repeat(64 * 1_024 + 1)
            ),
            413,
        ),
        (
            "150 headers",
            format!("GET /metrics HTTP/1.1\r\nHost: nissa\r\nConnection: close\r\n{many_headers}\r\n"),
            431,
        ),
        (
            "70 KB path",
            format!("GET /{} HTTP/1.1\r\nHost: nissa\r\nConnection: close\r\n\r\n", "a".repeat(64 * 1_024 + 1)),
            414,
        ),
    ];
    for (what, raw, wanted) in cases {
        let status = raw_status(probe, raw.as_bytes()).await.map_err(|error| format!("{what}: {error}"))?;
        expect(what, status, wanted)?;
        probe.get("/healthz").await.map_err(|error| format!("after the {what}: {error}"))?;
    }
    Ok(())
}

/// Sends raw bytes and returns the response status. The server may close before
/// reading everything; whatever it answered before that is what counts.
async fn raw_status<C: Connector>(probe: &Probe<C>, raw: &[u8]) -> Result<u16, String> {
    let mut stream = probe.connector.connect(&probe.host, probe.port).await.map_err(|error| error.to_string())?;
    let _maybe_cut_short = stream.write_all(raw).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    if answer.is_empty() {
        return Err(format!("no answer ({read:?})"));
    }
    let text = String::from_utf8_lossy(&answer);
    let code = text.split_whitespace().nth(1).ok_or_else(|| format!("no status line in {text:?}"))?;
    code.parse().map_err(|_| format!("bad status {code:?}"))
}

/// The hand-computed burn-rate example, for windows of 500 ms and 2 s:
/// four samples at t (one violation: 150 > 100; 100 is not above 100), then 1 s
/// later two more (one violation). Read at once: the 500 ms window holds the
/// last two (1/2 = 0.5), the 2 s window all six (2/6 = 0.3333…).
pub async fn burn_rates<C: Connector, R: RngCore>(rig: &mut AlertRig<C, R>) -> Result<(), String> {
    let pair = |actual: f64| [("slo.drill_latency_actual", actual), ("slo.drill_latency_objective", 100.0)];
    for actual in [150.0, 90.0, 80.0, 100.0] {
        rig.feed(&pair(actual)).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.feed(&pair(300.0)).await?;
    let summary = rig.feed(&pair(50.0)).await?;
    let slo = &summary["slo"]["drill_latency"];
    let burn = |window: &str| slo["windows"][window]["burn_rate"].as_f64().unwrap_or(f64::NAN);
    expect("samples, violations", (slo["total"].as_u64(), slo["violations"].as_u64()), (Some(6), Some(2)))?;
    expect("500 ms window", burn("500ms"), 0.5)?;
    expect("2 s window", burn("2s"), 2.0 / 6.0)?;
    expect("breached (0.333 < 0.4)", slo["breached"].as_bool(), Some(false))
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, found: T, wanted: T) -> Result<(), String> {
    if found == wanted { Ok(()) } else { Err(format!("{what}: found {found:?}, wanted {wanted:?}")) }
}
