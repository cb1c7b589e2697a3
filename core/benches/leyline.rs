//! Leyline costs: sign+verify throughput against bare HMAC-SHA256 on the same bytes,
//! and encoded size per message type, protobuf against serde JSON.
//!
//! `cargo bench -p esper-core --bench leyline [-- --frames N]`
//! `cargo bench -p esper-core --bench leyline -- --full-window`: the replay check
//! at 40 000 frames a second for a whole freshness window (every nonce of 66 s
//! live at once), against the same frames through a 1 s window; time and memory.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::hint::black_box;
use std::time::Instant;

use esper_core::leyline::signing;
use esper_core::leyline::{
    AdaptationCommand, BusEnvelope, CommandPayload, CommandSeedOperation, CommandType, EmergencyLevel, EmergencySignal,
    FieldReport, FieldReportOutcome, MessagePriority, SeedLifecycleStage, SeedOperation, SeedState, SigningKey,
    SystemStatePacket, TelemetryPacket, Timestamp, Verifier, VerifyPolicy,
};
use esper_core::planted::Planted;
use esper_core::tolaria::metrics::{EpochFigures, TolariaCounters, epoch_packets};
use hmac::{Hmac, Mac};
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::Sha256;

const NOW_MS: u64 = 1_767_225_600_000;

fn main() {
    if std::env::args().any(|arg| arg == "--full-window") {
        full_window(40_000);
        return;
    }
    let frames = frames_arg().unwrap_or(200_000);
    let telemetry = tolaria_telemetry();
    println!("leyline bench: {frames} frames of a {}-byte Tolaria telemetry envelope", telemetry.encoded_len());
    sign_verify(frames, &BusEnvelope::wrap(&telemetry, telemetry.priority()));
    println!();
    println!("{:<20} {:>9} {:>10} {:>7}", "message", "protobuf", "json", "ratio");
    size_row("SystemStatePacket", &system_state());
    size_row("AdaptationCommand", &germinate());
    size_row("FieldReport", &field_report());
    size_row("TelemetryPacket", &telemetry);
    size_row("EmergencySignal", &emergency());
    let envelope = BusEnvelope::wrap(&telemetry, MessagePriority::Normal);
    size_row("BusEnvelope", &envelope);
    let frame = signing::sign(&key(), &envelope, NOW_MS, &mut ChaCha8Rng::seed_from_u64(1));
    println!("{:<20} {:>9} {:>10} {:>7}", "signed frame", frame.len(), "-", "-");
}

fn frames_arg() -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--frames")?;
    args.get(at + 1)?.parse().ok()
}

fn sign_verify(frames: u64, envelope: &BusEnvelope) {
    let key = key();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut verifier = Verifier::new(key.clone(), VerifyPolicy::default());
    let started = Instant::now();
    for i in 0..frames {
        let frame = signing::sign(&key, envelope, NOW_MS + i / 1000, &mut rng);
        black_box(verifier.verify(&frame, NOW_MS + i / 1000).is_ok());
    }
    let leyline = started.elapsed().as_secs_f64();

    // Peer: the bare cryptography — one MAC to sign and one to verify over the same
    // bytes, with no framing, encoding, freshness or nonce ledger.
    let bytes = envelope.encode_to_vec();
    let started = Instant::now();
    for _ in 0..frames {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"bench-secret").expect("any key length");
        mac.update(&bytes);
        let tag = mac.finalize().into_bytes();
        let mut check = Hmac::<Sha256>::new_from_slice(b"bench-secret").expect("any key length");
        check.update(&bytes);
        black_box(check.verify_slice(&tag).is_ok());
    }
    let bare = started.elapsed().as_secs_f64();
    let counters = verifier.counters();
    assert_eq!(counters.accepted, frames, "every benchmark frame must verify");
    println!("  sign+verify   {:>10.0} frames/s", frames as f64 / leyline);
    println!("  bare HMAC x2  {:>10.0} frames/s", frames as f64 / bare);
    println!("  ratio leyline / bare HMAC: {:.2}x the time", leyline / bare);
}

/// Signs and verifies `rate` frames a second (by their timestamps) for the default
/// window, future skew and bucket, so the replay check ends holding every nonce it
/// may ever hold at once; the peer is the same frames through a 1 s window (a
/// ledger that stays small). Frames are signed inside both loops (storing 2.6
/// million would swamp the memory figure). Prints both rates, the ratio and the
/// resident memory the full ledger added.
fn full_window(rate: u64) {
    let key = key();
    let policy = VerifyPolicy { max_frames_per_s: rate, ..VerifyPolicy::default() };
    let frames = policy.nonce_capacity() as u64;
    let telemetry = tolaria_telemetry();
    let envelope = BusEnvelope::wrap(&telemetry, telemetry.priority());
    let run = |policy: VerifyPolicy| {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let resident_before = resident_kib();
        let mut verifier = Verifier::new(key.clone(), policy);
        let started = Instant::now();
        for i in 0..frames {
            let at_ms = NOW_MS + i * 1_000 / rate;
            let frame = signing::sign(&key, &envelope, at_ms, &mut rng);
            black_box(verifier.verify(&frame, at_ms).is_ok());
        }
        let took = started.elapsed().as_secs_f64();
        let added_kib = resident_kib().saturating_sub(resident_before);
        (verifier.counters(), took, added_kib)
    };
    let (full, full_s, full_kib) = run(policy);
    let small_window = VerifyPolicy { freshness_window_ms: 1_000, max_future_skew_ms: 0, ..policy };
    let (_, small_s, small_kib) = run(small_window);
    assert_eq!(full.accepted, frames, "every frame fits the ledger sized for this rate");
    println!("replay check: {frames} frames at {rate} frames/s (a full {} ms window)", policy.freshness_window_ms);
    println!("  full window  {:>10.0} frames/s signed+verified, +{full_kib} KiB resident", frames as f64 / full_s);
    println!("  1 s window   {:>10.0} frames/s signed+verified, +{small_kib} KiB resident", frames as f64 / small_s);
    println!("  ratio full / 1 s window: {:.2}x the time", full_s / small_s);
    println!("  bytes per live nonce: {:.1}", full_kib as f64 * 1024.0 / frames as f64);
}

/// This process's resident set (`VmRSS`, KiB), 0 where /proc is not available.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn size_row<M: Message + serde::Serialize>(name: &str, message: &M) {
    let protobuf = message.encoded_len();
    let json = serde_json::to_vec(message).expect("serialises").len();
    println!("{name:<20} {protobuf:>9} {json:>10} {:>6.2}x", json as f64 / protobuf as f64);
}

fn key() -> SigningKey {
    SigningKey::new(b"bench-secret".to_vec()).expect("non-empty")
}

/// Tolaria's own end-of-epoch KPI packet, from the producer the trainer uses.
fn tolaria_telemetry() -> TelemetryPacket {
    let figures = EpochFigures {
        epoch: 3,
        loss: 0.6875,
        latency_ms: 4.35,
        seeds_active: 1,
        conservative: false,
        latency_objective_ms: 18.0,
        restore_latency_ms: None,
        rollback_deadline_ms: 250.0,
    };
    let packets = epoch_packets(&figures, &TolariaCounters::default(), Vec::new(), NOW_MS, Planted::NONE)
        .expect("fits the budget");
    packets.into_iter().next().expect("the KPI packet comes first")
}

fn system_state() -> SystemStatePacket {
    SystemStatePacket {
        version: 1,
        current_epoch: 3,
        validation_accuracy: 0.84,
        validation_loss: 0.41,
        timestamp_ns: NOW_MS * 1_000_000,
        training_metrics: [("loss".to_owned(), 0.43), ("hook_latency_ms".to_owned(), 1.2)].into(),
        seed_states: vec![SeedState {
            seed_id: "seed-1".into(),
            stage: SeedLifecycleStage::Training.into(),
            gradient_norm: 0.8,
            learning_rate: 0.01,
            layer_depth: 1,
            ..SeedState::default()
        }],
        packet_id: "run-7-s96".into(),
        global_step: 96,
        training_loss: 0.43,
        source_subsystem: "tolaria".into(),
        training_run_id: "run-7".into(),
        ..SystemStatePacket::default()
    }
}

fn germinate() -> AdaptationCommand {
    AdaptationCommand {
        version: 1,
        command_id: "run-7-cmd-42".into(),
        command_type: CommandType::Seed.into(),
        target_seed_id: "seed-1".into(),
        issued_at: Some(Timestamp::from_millis(NOW_MS)),
        issued_by: "tamiyo".into(),
        payload: Some(CommandPayload::SeedOperation(CommandSeedOperation {
            operation: SeedOperation::Germinate.into(),
            blueprint_id: "BP001".into(),
            parameters: [("alpha".to_owned(), 0.1)].into(),
        })),
        ..AdaptationCommand::default()
    }
}

fn field_report() -> FieldReport {
    FieldReport {
        version: 1,
        report_id: "fr-run-7-42".into(),
        command_id: "run-7-cmd-42".into(),
        training_run_id: "run-7".into(),
        seed_id: "seed-1".into(),
        blueprint_id: "BP001".into(),
        outcome: FieldReportOutcome::Success.into(),
        metrics: [("loss_delta".to_owned(), -0.02)].into(),
        observation_window_epochs: 1,
        issued_at: Some(Timestamp::from_millis(NOW_MS)),
        tamiyo_policy_version: "policy-v1".into(),
        ..FieldReport::default()
    }
}

fn emergency() -> EmergencySignal {
    EmergencySignal {
        version: 1,
        level: EmergencyLevel::Halt.into(),
        reason: "rollback_deadline".into(),
        origin: "tolaria".into(),
        triggered_at: Some(Timestamp::from_millis(NOW_MS)),
        monotonic_time_ms: 12_345,
        run_id: "run-7".into(),
        ..EmergencySignal::default()
    }
}
