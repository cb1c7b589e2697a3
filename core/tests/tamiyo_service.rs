//! `TamiyoService` end to end in process: commands, field reports, telemetry.

mod tamiyo_support;

use esper_core::leyline::{
    CommandType, FieldReportOutcome, SystemStatePacket, TELEMETRY_BYTE_LIMIT, TelemetryPacket, Timestamp,
};
use esper_core::tamiyo::{BlueprintCatalog, MemoryFieldReportSink, PolicyConfig, TamiyoConfig, TamiyoService};
use esper_core::tolaria::ports::TamiyoPort;
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tamiyo_support::{NOW_MS, PLATEAU, TestService, flat, packet, service, service_with};

async fn run(service: &mut TestService, packets: &[SystemStatePacket]) -> Vec<esper_core::leyline::AdaptationCommand> {
    let mut commands = Vec::new();
    for packet in packets {
        commands.push(service.evaluate_step(packet).await.expect("the in-process service never fails"));
    }
    commands
}

fn reason(command: &esper_core::leyline::AdaptationCommand) -> &str {
    command.annotations.get("risk_reason").map_or("", String::as_str)
}

fn metric(packets: &[TelemetryPacket], name: &str) -> Vec<f64> {
    packets.iter().filter_map(|p| p.metric(name)).collect()
}

#[tokio::test(start_paused = true)]
async fn issues_stamped_commands_with_one_report_and_budgeted_telemetry_each() {
    let mut service = service();
    let commands = run(&mut service, &flat(0..PLATEAU as u64 + 1)).await;
    let germination = commands.last().expect("commands");
    assert_eq!(germination.command_type, i32::from(CommandType::Seed));
    assert!(germination.command_id.starts_with("tamiyo-s31-"), "{}", germination.command_id);
    assert_eq!(germination.issued_at, Some(Timestamp::from_millis(NOW_MS)));
    assert_eq!(germination.issued_by, "tamiyo");
    let ids: std::collections::BTreeSet<_> = commands.iter().map(|c| c.command_id.as_str()).collect();
    assert_eq!(ids.len(), PLATEAU + 1, "command ids are unique");

    let reports = service.sink().reports();
    assert_eq!(reports.len(), PLATEAU + 1);
    let report = &reports[PLATEAU];
    assert_eq!(report.command_id, germination.command_id);
    assert_eq!((report.blueprint_id.as_str(), report.training_run_id.as_str()), ("BP001", "run-7"));
    assert_eq!(report.outcome, i32::from(FieldReportOutcome::Success));
    assert_eq!(report.metrics.get("loss_delta"), Some(&0.0));
    assert_eq!(reports[0].outcome, i32::from(FieldReportOutcome::Neutral), "a policy pause is neutral");

    let telemetry = service.drain_telemetry();
    assert_eq!(telemetry.len(), PLATEAU + 1, "one metrics packet per step, no events on a quiet run");
    for packet in &telemetry {
        assert!(packet.encoded_len() <= TELEMETRY_BYTE_LIMIT, "{}: {} bytes", packet.packet_id, packet.encoded_len());
    }
    for name in ["tamiyo.validation_loss", "tamiyo.loss_delta", "tamiyo.blueprint.risk", "tamiyo.inference.latency_ms"]
    {
        assert_eq!(metric(&telemetry, name).len(), PLATEAU + 1, "{name} on every step");
    }
    assert_eq!(metric(&telemetry, "tamiyo.validation_loss")[0], 0.5);
    assert_eq!(service.counters().evaluations, PLATEAU as u64 + 1);
}

#[tokio::test(start_paused = true)]
async fn quarantined_blueprint_becomes_a_pause_with_a_regression_report() {
    let policy = PolicyConfig { blueprints: vec!["BP043".into()], ..PolicyConfig::default() };
    let mut service = service_with(TamiyoConfig { policy, ..TamiyoConfig::default() }, BlueprintCatalog::karn());
    let commands = run(&mut service, &flat(0..PLATEAU as u64 + 1)).await;
    let vetoed = &commands[PLATEAU];
    assert_eq!(vetoed.command_type, i32::from(CommandType::Pause));
    assert_eq!(reason(vetoed), "bp_quarantine");
    assert_eq!(vetoed.annotations.get("proposed_command").map(String::as_str), Some("COMMAND_SEED"));
    assert!(vetoed.payload.is_none() && vetoed.target_seed_id.is_empty(), "a pause carries no seed operation");
    assert_eq!(service.sink().reports()[PLATEAU].outcome, i32::from(FieldReportOutcome::Regression));
    let telemetry = service.drain_telemetry();
    let events: Vec<_> = telemetry.iter().flat_map(|p| &p.events).map(|e| e.description.as_str()).collect();
    assert_eq!(events, ["bp_quarantine", "pause_triggered"]);
    assert_eq!(metric(&telemetry, "tamiyo.blueprint.risk")[PLATEAU], f64::from(0.95_f32));
}

#[tokio::test(start_paused = true)]
async fn loss_spike_pauses_with_loss_spike() {
    let mut service = service();
    let commands = run(&mut service, &[packet(0, 1.0), packet(1, 1.0), packet(2, 2.0)]).await;
    assert_eq!(commands.iter().map(reason).collect::<Vec<_>>(), ["policy", "policy", "loss_spike"]);
    let report = &service.sink().reports()[2];
    assert_eq!(report.outcome, i32::from(FieldReportOutcome::Regression));
    let loss_delta = report.metrics.get("loss_delta").copied().expect("loss_delta");
    assert!((loss_delta - 0.2 * 1.0).abs() < 1e-6, "{loss_delta}");
}

#[tokio::test(start_paused = true)]
async fn conservative_mode_pauses_everything_skips_urza_and_says_so() {
    let config = TamiyoConfig { conservative_mode: true, ..TamiyoConfig::default() };
    let mut careful = service_with(config, BlueprintCatalog::karn());
    let commands = run(&mut careful, &flat(0..40)).await;
    assert!(commands.iter().all(|c| reason(c) == "conservative_mode"));
    assert_eq!(careful.metadata_counters().lookups, 0, "no lookup for a command that will be paused anyway");
    let telemetry = careful.drain_telemetry();
    assert!(metric(&telemetry, "tamiyo.conservative_mode").iter().all(|&on| on == 1.0));
    let report = careful.sink().reports().last().expect("reports");
    assert_eq!(report.follow_up_actions[0].action_type, "CONSERVATIVE_MODE");
    let mut released = service();
    let commands = run(&mut released, &flat(0..40)).await;
    let germination = commands[PLATEAU].command_type;
    assert_eq!(germination, i32::from(CommandType::Seed), "the same packets germinate without it");
}

#[tokio::test(start_paused = true)]
async fn a_failing_sink_is_counted_and_reported_but_the_command_still_goes_out() {
    let sink = MemoryFieldReportSink::new(2);
    let clock = || NOW_MS;
    let mut service = TamiyoService::new(
        TamiyoConfig::default(),
        BlueprintCatalog::karn(),
        sink,
        clock,
        ChaCha8Rng::seed_from_u64(1),
    );
    for step in 0..3 {
        let command = service.evaluate(&packet(step, 1.0)).await;
        assert!(!command.command_id.is_empty());
    }
    let counters = service.counters();
    assert_eq!((counters.field_reports_written, counters.field_report_failures), (2, 1));
    let events: Vec<_> = service.drain_telemetry().into_iter().flat_map(|p| p.events).map(|e| e.description).collect();
    assert_eq!(events, ["field_report_failed"]);
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_packets_same_commands_and_reports() {
    let packets: Vec<_> = (0..60).map(|s| packet(s, 1.0 + ((s * 7919 % 29) as f32 - 14.0) * 0.01)).collect();
    let (mut first, mut second) = (service(), service());
    assert_eq!(run(&mut first, &packets).await, run(&mut second, &packets).await);
    assert_eq!(first.sink().reports(), second.sink().reports());
    let kinds: std::collections::BTreeSet<_> = first.sink().reports().iter().map(|r| r.outcome).collect();
    assert!(kinds.len() > 1, "the history exercises more than one outcome: {kinds:?}");
    let payloads = run(&mut service(), &packets).await.into_iter().filter_map(|c| c.payload).count();
    assert!(payloads > 0, "and more than pauses");
}
