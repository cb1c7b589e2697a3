//! The operator tools: `esper nissa` (Nissa alone, against a real `redis-server`)
//! and `esper field-reports dump` (Tamiyo's field-report log as JSON lines).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use esper_core::leyline::signing::sign;
use esper_core::leyline::{BusEnvelope, FieldReport, MessagePriority, MetricPoint, SigningKey, TelemetryPacket};
use esper_core::storage::RealStorage;
use esper_core::tamiyo::field_reports::{FieldReportConfig, FieldReportStore};
use rand::SeedableRng;
use support::field_reports::report;
use support::{RealRedis, http_get as get};

const SECRET: &str = "operator-tools-test-secret-of-32-bytes-or-more";

/// Polls `path` every 20 ms, at most 500 times, until `done` accepts the answer.
fn poll(address: &str, path: &str, done: impl Fn(u16, &str) -> bool) -> String {
    let mut last = None;
    for _ in 0..500 {
        match get(address, path) {
            Ok((status, body)) if done(status, &body) => return body,
            other => last = Some(other),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{path} never answered as expected: {last:?}");
}

fn unix_ms() -> u64 {
    #[allow(clippy::disallowed_methods, reason = "the frame's timestamp must be fresh for a real Nissa")]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).expect("after 1970")
}

/// A telemetry packet XADDed to `oona.telemetry` shows up in `esper nissa`'s
/// `/metrics`; SIGINT stops it with exit 0 after draining.
#[test]
fn esper_nissa_exports_a_published_packet_and_stops_on_sigint() {
    let Some(redis) = RealRedis::start("esper_nissa") else { return };
    let mut nissa = Command::new(env!("CARGO_BIN_EXE_esper"))
        .args(["nissa", "--redis-url", &format!("redis://127.0.0.1:{}", redis.port), "--addr", "127.0.0.1:0"])
        .env("ESPER_LEYLINE_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("esper nissa starts");
    let mut stdout = BufReader::new(nissa.stdout.take().expect("piped stdout"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("a ready line");
    let address = ready
        .split_whitespace()
        .find_map(|field| field.strip_prefix("nissa=http://"))
        .unwrap_or_else(|| panic!("no address in {ready:?}"))
        .to_owned();
    poll(&address, "/readyz", |status, _| status == 200);

    let packet = TelemetryPacket {
        packet_id: "tolaria-e1".to_owned(),
        source_subsystem: "tolaria".to_owned(),
        metrics: vec![MetricPoint::new("tolaria.training.loss", 0.625, "")],
        ..TelemetryPacket::default()
    };
    let key = SigningKey::new(SECRET.as_bytes().to_vec()).expect("a key");
    let frame = sign(
        &key,
        &BusEnvelope::wrap(&packet, MessagePriority::Normal),
        unix_ms(),
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(7),
    );
    let client = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).expect("a redis url");
    let mut connection = client.get_connection().expect("redis answers");
    let _id: String =
        redis::cmd("XADD").arg("oona.telemetry").arg("*").arg("frame").arg(frame).query(&mut connection).expect("XADD");

    let metrics = poll(&address, "/metrics", |status, body| {
        status == 200 && body.contains("esper_tolaria_training_loss{source=\"tolaria\"} 0.625")
    });
    assert!(metrics.contains("esper_telemetry_packets_total{source=\"tolaria\"} 1"), "{metrics}");

    let signalled = Command::new("kill").args(["-INT", &nissa.id().to_string()]).status().expect("kill runs");
    assert!(signalled.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("the last lines");
    let status = nissa.wait().expect("esper nissa exits");
    assert!(status.success(), "{status:?}: {rest}");
    assert!(rest.contains("esper nissa: stopped after SIGINT nissa_telemetry_ingested=1"), "{rest}");
}

/// Reports appended through Tamiyo's store come back from `esper field-reports
/// dump` as one JSON object a line, equal to what was appended, in order; a
/// damaged tail is reported on stderr with exit 1, after the intact reports.
#[test]
fn field_reports_dump_round_trips_a_wal_and_reports_damage() {
    let dir = tempfile::tempdir().expect("a store dir");
    let config = FieldReportConfig::new(dir.path());
    let now_ms = unix_ms();
    let reports: Vec<FieldReport> = (1..=3).map(|id| report(id, now_ms)).collect();
    support::runtime::real().block_on(async {
        let mut store = FieldReportStore::open(RealStorage, config.clone(), now_ms).await.expect("the store opens");
        for report in &reports {
            store.append(report.clone(), now_ms).await.expect("append");
        }
    });
    let dump = || {
        Command::new(env!("CARGO_BIN_EXE_esper"))
            .args(["field-reports", "dump"])
            .arg(dir.path())
            .output()
            .expect("esper runs")
    };
    let output = dump();
    assert!(output.status.success(), "{output:?}");
    let dumped: Vec<FieldReport> = String::from_utf8(output.stdout)
        .expect("utf8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not a report ({error}): {line}")))
        .collect();
    assert_eq!(dumped, reports);

    let log = config.log_path();
    let intact = std::fs::read(&log).expect("the log");
    std::fs::write(&log, [intact.as_slice(), &[0x40, 0, 0, 0]].concat()).expect("a torn tail");
    let output = dump();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 3, "the intact reports first");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("is damaged at offset {}", intact.len())), "{stderr}");
    assert_eq!(std::fs::read(&log).expect("the log").len(), intact.len() + 4, "the dump changed nothing");
}
