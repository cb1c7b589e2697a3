//! Nissa for real (tokio TCP, real `redis-server`, wall clock) against the real
//! Prometheus tools: `promtool check metrics` on a scrape, `promtool check rules`
//! and `promtool test rules` on the generated rules file, a `prometheus` server
//! that scrapes Nissa and reports the target up, the Grafana dashboard's
//! queries against what Nissa exposes, and bad input on HTTP and the bus.
//!
//! Each test starts what it needs on loopback and stops it; a missing
//! `redis-server`, `promtool` or `prometheus` fails the test unless `ESPER_SKIP`
//! names it (`support::external`).

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use esper_core::leyline::{
    BusEnvelope, FieldReport, FieldReportOutcome, MessagePriority, SeedLifecycleStage, SeedState, SystemStatePacket,
};
use esper_core::nissa::alerts::default_rules;
use esper_core::nissa::{NissaConfig, prometheus_rules};
use esper_core::planted::Planted;
use esper_core::tolaria::metrics::{EpochFigures, TolariaCounters, epoch_packets};
use esper_scenarios::sim::nissa::{catalog_checks, checks};
use support::external::{Tool, require};
use support::{RealRedis, free_port, nissa, wait_until_listening};

const RULES: &str = "ci/prometheus/alert_rules.yml";
const RULES_TEST: &str = "ci/prometheus/alert_rules_test.yml";
const DASHBOARD: &str = "ci/grafana/esper.json";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Feeds a running Nissa traffic of every kind — each alert check (fired and
/// cleared), a Tolaria epoch packet, Simic rewards, awkward metric names, a
/// system state packet and a field report — and returns its `/metrics` text.
async fn populate(redis_port: u16, port: u16) -> String {
    let mut rig = nissa::rig(redis_port, port).await;
    for check in catalog_checks(&NissaConfig::default()) {
        let result = rig.run(&check).await.expect("drill runs");
        assert!(result.passed(), "{result}");
    }
    let figures = EpochFigures {
        epoch: 1,
        loss: 0.7,
        latency_ms: 4.35,
        seeds_active: 1,
        conservative: false,
        latency_objective_ms: 250.0,
        restore_latency_ms: None,
        rollback_deadline_ms: 250.0,
    };
    for packet in
        epoch_packets(&figures, &TolariaCounters::default(), Vec::new(), 0, Planted::NONE).expect("fits 280 B")
    {
        rig.publish(&BusEnvelope::wrap(&packet, packet.priority())).await.expect("published");
        rig.ingested += 1;
    }
    for reward in [1.0, -0.25] {
        let packet = esper_core::leyline::TelemetryPacket {
            source_subsystem: "simic".to_owned(),
            metrics: vec![esper_core::leyline::MetricPoint::new("simic.training.reward", reward, "")],
            ..Default::default()
        };
        rig.publish(&BusEnvelope::wrap(&packet, MessagePriority::Normal)).await.expect("published");
        rig.ingested += 1;
    }
    rig.feed(&[
        ("gpuMemoryMB", 512.0),
        ("odd name/with spaces", 1.0),
        ("tamiyo.field_reports.retry_count", 2.0),
        ("x.sum", 3.0),
        ("tolaria.timeout.tamiyo_total", 2.0),
    ])
    .await
    .expect("ingested");
    let state = SystemStatePacket {
        packet_id: "run-s1".to_owned(),
        source_subsystem: "tolaria".to_owned(),
        training_metrics: [("hook_latency_ms".to_owned(), 3.5), ("kasmina.isolation.violations".to_owned(), 0.0)]
            .into(),
        seed_states: vec![SeedState {
            seed_id: "seed-1".into(),
            stage: SeedLifecycleStage::Training.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    rig.publish(&BusEnvelope::wrap(&state, MessagePriority::Normal)).await.expect("published");
    let report =
        FieldReport { report_id: "fr-1".to_owned(), outcome: FieldReportOutcome::Success.into(), ..Default::default() };
    rig.publish(&BusEnvelope::wrap(&report, MessagePriority::Normal)).await.expect("published");
    let ingested = rig.ingested;
    rig.probe
        .wait_for("every packet, the state packet and the report", 2_000, |summary| {
            let ingest = &summary["ingest"];
            ingest["telemetry_packets"].as_u64() >= Some(ingested)
                && ingest["system_state_packets"] == 1
                && ingest["field_reports"] == 1
        })
        .await
        .expect("Nissa ingests it all");
    rig.probe.get("/metrics").await.expect("scrape").text()
}

/// A populated Nissa's scrape, or `None` when `ESPER_SKIP` skips `redis-server`.
fn scrape(test: &str) -> Option<(RealRedis, u16, String)> {
    let redis = RealRedis::start(test)?;
    let port = nissa::spawn(redis.port, NissaConfig::default());
    let text = support::runtime::real().block_on(populate(redis.port, port));
    Some((redis, port, text))
}

#[test]
fn scraped_metrics_pass_promtool_check_metrics() {
    let test = "scraped_metrics_pass_promtool_check_metrics";
    let Some(promtool) = require(Tool::Promtool, test) else { return };
    let Some((_redis, _port, text)) = scrape(test) else { return };
    for family in [
        "esper_telemetry_packets_total{source=\"tolaria\"} 1",
        "esper_system_state_packets_total{phase=\"training\"} 1",
        "esper_field_reports_total{outcome=\"success\"} 1",
        "esper_simic_training_reward_total{sign=\"positive\"} 1",
        "esper_simic_training_reward_total{sign=\"negative\"} 0.25",
        "esper_simic_training_iterations_total 2",
        "esper_tolaria_training_latency_seconds{source=\"tolaria\"} 0.00435",
        "esper_tolaria_timeout_tamiyo_total{source=\"drills\"} 2",
        "esper_tolaria_hook_latency_seconds{source=\"tolaria\"} 0.0035",
        "esper_gpu_memory_bytes{source=\"drills\"} 512000000",
        "esper_tamiyo_field_reports_retry_count_value{source=\"drills\"} 2",
        "esper_alert_notifications_total{route=\"pagerduty\",state=\"resolved\"} 3",
    ] {
        assert!(text.lines().any(|line| line == family), "/metrics lacks {family:?}:\n{text}");
    }
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    check.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("scrape written to promtool");
    let output = check.wait_with_output().expect("promtool finishes");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}

/// `ESPER_UPDATE_RULES=1` rewrites the file instead of comparing.
#[test]
fn rules_file_is_the_alert_catalog_and_passes_promtool() {
    let config = NissaConfig::default();
    let rendered = prometheus_rules::render(
        &default_rules(config.training_latency_rule, config.prefetch_rule),
        &config.slo_windows,
    );
    if std::env::var("ESPER_UPDATE_RULES").as_deref() == Ok("1") {
        std::fs::write(repo(RULES), &rendered).expect("rules file written");
    }
    let committed = std::fs::read_to_string(repo(RULES)).expect("rules file exists");
    assert_eq!(committed, rendered, "{RULES} is stale; regenerate it with ESPER_UPDATE_RULES=1");
    let Some(promtool) = require(Tool::Promtool, "rules_file_is_the_alert_catalog_and_passes_promtool") else {
        return;
    };
    for args in [["check", "rules", RULES], ["test", "rules", RULES_TEST]] {
        let output = Command::new(&promtool).args(args).current_dir(repo(".")).output().expect("promtool runs");
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A `prometheus` server on loopback, killed (and its data removed) on drop.
struct PrometheusServer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl PrometheusServer {
    fn start(binary: &Path, nissa_port: u16) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("esper-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: nissa\n    static_configs:\n      - targets: ['127.0.0.1:{nissa_port}']\n",
            repo(RULES).display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config written");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let server = Self { child, dir, port };
        wait_until_listening(port);
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
        let _removed = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_nissa_and_reports_the_target_up() {
    let test = "prometheus_scrapes_nissa_and_reports_the_target_up";
    let Some(binary) = require(Tool::Prometheus, test) else { return };
    let Some(redis) = RealRedis::start(test) else { return };
    let port = nissa::spawn(redis.port, NissaConfig::default());
    let server = PrometheusServer::start(&binary, port);
    let api = nissa::probe(server.port);
    let runtime = support::runtime::real();
    let mut last = String::new();
    for _ in 0..300 {
        let targets =
            runtime.block_on(api.get("/api/v1/targets")).map_or_else(|error| error, |response| response.text());
        let parsed: serde_json::Value = serde_json::from_str(&targets).unwrap_or_default();
        let active = &parsed["data"]["activeTargets"];
        if active.as_array().is_some_and(|targets| targets.len() == 1 && targets[0]["health"] == "up") {
            assert_eq!(active[0]["labels"]["job"], "nissa");
            let rules = runtime.block_on(api.get("/api/v1/rules")).expect("rules API").text();
            assert!(rules.contains("training_latency_high"), "Prometheus loaded the rules file: {rules}");
            return;
        }
        last = targets;
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("Prometheus never reported the Nissa target up within 30 s; last answer {last}\nlog:\n{}", server.log());
}

#[test]
fn grafana_dashboard_queries_only_metrics_nissa_exposes() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo(DASHBOARD)).expect("dashboard exists")).expect("valid JSON");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("every panel has targets") {
            let expr = target["expr"].as_str().expect("every target has a PromQL expr");
            queried.extend(metric_names(expr));
        }
    }
    assert!(queried.len() >= 8, "the dashboard covers Nissa's metrics: {queried:?}");
    let Some((_redis, _port, text)) = scrape("nissa_prometheus") else { return };
    let exposed: BTreeSet<&str> =
        text.lines().filter(|line| !line.starts_with('#')).filter_map(|line| line.split(['{', ' ']).next()).collect();
    let missing: Vec<&String> = queried.iter().filter(|name| !exposed.contains(name.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics Nissa does not expose: {missing:?}");
}

/// The `esper_…` metric names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("esper_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn real_nissa_refuses_oversized_requests_and_dead_letters_bad_envelopes() {
    let Some(redis) = RealRedis::start("real_nissa_refuses_oversized_requests_and_dead_letters_bad_envelopes") else {
        return;
    };
    let port = nissa::spawn(redis.port, NissaConfig::default());
    support::runtime::real().block_on(async {
        let mut rig = nissa::rig(redis.port, port).await;
        checks::oversized_requests(&rig.probe).await.expect("oversized requests get 4xx");
        let fixture = esper_scenarios::sim::oona_checks::BusFixture {
            connector: esper_core::net::TokioConnector,
            host: "127.0.0.1".to_owned(),
            port: redis.port,
            resetter: esper_scenarios::sim::oona_checks::Resetter::ClientKill,
            seed: 4,
        };
        let mut admin = fixture.admin().await.expect("admin connection");
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        checks::bad_envelopes(&mut rig, &mut admin, support::wall_clock_ms(), &mut rng)
            .await
            .expect("bad input handled");
    });
}
