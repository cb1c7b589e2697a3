//! Leyline contract properties: round trips, closed enums, signing, hostile bytes.

use std::collections::BTreeMap;

use esper_core::leyline::signing::{self, FRAME_HEADER_LEN};
use esper_core::leyline::{
    AdaptationCommand, BusEnvelope, BusMessageType, CommandCircuitBreaker, CommandOptimizerAdjustment, CommandPayload,
    CommandRollback, CommandSeedOperation, CommandType, Contract, DecodeError, EmergencySignal, FieldReport,
    FollowUpAction, HardwareContext, MessagePriority, MetricPoint, SeedState, SigningKey, SystemHealth,
    SystemStatePacket, TelemetryEvent, TelemetryPacket, Timestamp, Verifier, VerifyError, VerifyPolicy,
};
use proptest::prelude::*;
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Finite floats only: NaN != NaN would make equality-based round trips meaningless.
fn real32() -> impl Strategy<Value = f32> {
    prop_oneof![Just(0.0f32), -1.0e6f32..1.0e6f32]
}

fn real64() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0f64), -1.0e9f64..1.0e9f64]
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_.]{0,12}"
}

fn float_map() -> impl Strategy<Value = BTreeMap<String, f32>> {
    prop::collection::btree_map(name(), real32(), 0..4)
}

fn string_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(name(), name(), 0..4)
}

/// Any value of a closed enum, by wire number.
fn one_of(values: Vec<i32>) -> impl Strategy<Value = i32> {
    prop::sample::select(values)
}

fn wire<E: Copy + Into<i32>>(all: &[E]) -> Vec<i32> {
    all.iter().map(|&e| e.into()).collect()
}

fn timestamp() -> impl Strategy<Value = Option<Timestamp>> {
    prop::option::of((0u64..4_000_000_000_000).prop_map(Timestamp::from_millis))
}

prop_compose! {
    fn seed_state()(seed_id in name(), stage in one_of(wire(esper_core::leyline::SeedLifecycleStage::ALL)),
        gradient_norm in real32(), learning_rate in real32(), layer_depth in any::<u32>(), metrics in float_map(),
        age_epochs in any::<u32>(), risk_score in real32()) -> SeedState {
        SeedState { seed_id, stage, gradient_norm, learning_rate, layer_depth, metrics, age_epochs, risk_score }
    }
}

prop_compose! {
    fn hardware()(device_type in name(), device_id in name(), total in real32(), available in real32(),
        temperature in real32(), utilization in real32(), capability in any::<u32>()) -> HardwareContext {
        HardwareContext { device_type, device_id, total_memory_gb: total, available_memory_gb: available,
            temperature_celsius: temperature, utilization_percent: utilization, compute_capability: capability }
    }
}

prop_compose! {
    fn system_state()(version in any::<u32>(), current_epoch in any::<u32>(), validation_accuracy in real32(),
        validation_loss in real32(), timestamp_ns in any::<u64>(), hardware_context in prop::option::of(hardware()),
        training_metrics in float_map(), seed_states in prop::collection::vec(seed_state(), 0..3),
        ids in (name(), any::<u64>(), real32(), name(), name(), name())) -> SystemStatePacket {
        let (packet_id, global_step, training_loss, source_subsystem, training_run_id, experiment_name) = ids;
        SystemStatePacket { version, current_epoch, validation_accuracy, validation_loss, timestamp_ns,
            hardware_context, training_metrics, seed_states, packet_id, global_step, training_loss,
            source_subsystem, training_run_id, experiment_name }
    }
}

fn command_payload() -> impl Strategy<Value = Option<CommandPayload>> {
    use esper_core::leyline::{CircuitBreakerState, SeedOperation};
    prop::option::of(prop_oneof![
        (one_of(wire(SeedOperation::ALL)), name(), float_map()).prop_map(|(operation, blueprint_id, parameters)| {
            CommandPayload::SeedOperation(CommandSeedOperation { operation, blueprint_id, parameters })
        }),
        (name(), float_map()).prop_map(|(optimizer_id, hyperparameters)| {
            CommandPayload::OptimizerAdjustment(CommandOptimizerAdjustment { optimizer_id, hyperparameters })
        }),
        (one_of(wire(CircuitBreakerState::ALL)), name()).prop_map(|(desired_state, rationale)| {
            CommandPayload::CircuitBreaker(CommandCircuitBreaker { desired_state, rationale })
        }),
        (any::<u64>(), name())
            .prop_map(|(target_step, reason)| CommandPayload::Rollback(CommandRollback { target_step, reason })),
    ])
}

prop_compose! {
    fn adaptation_command()(version in any::<u32>(), command_id in name(),
        command_type in one_of(wire(CommandType::ALL)), target_seed_id in name(),
        execution_deadline_ms in any::<u32>(), issued_at in timestamp(), issued_by in name(),
        payload in command_payload(), annotations in string_map()) -> AdaptationCommand {
        AdaptationCommand { version, command_id, command_type, target_seed_id, execution_deadline_ms, issued_at,
            issued_by, payload, annotations }
    }
}

prop_compose! {
    fn field_report()(version in any::<u32>(), ids in (name(), name(), name(), name(), name()),
        outcome in one_of(wire(esper_core::leyline::FieldReportOutcome::ALL)), metrics in float_map(),
        observation_window_epochs in any::<u32>(), issued_at in timestamp(), tamiyo_policy_version in name(),
        actions in prop::collection::vec((name(), name()), 0..3), notes in name()) -> FieldReport {
        let (report_id, command_id, training_run_id, seed_id, blueprint_id) = ids;
        let follow_up_actions = actions.into_iter()
            .map(|(action_type, rationale)| FollowUpAction { action_type, rationale }).collect();
        FieldReport { version, report_id, command_id, training_run_id, seed_id, blueprint_id, outcome, metrics,
            observation_window_epochs, issued_at, tamiyo_policy_version, follow_up_actions, notes }
    }
}

fn telemetry_level() -> impl Strategy<Value = i32> {
    one_of(wire(esper_core::leyline::TelemetryLevel::ALL))
}

prop_compose! {
    fn telemetry()(packet_id in name(), timestamp in timestamp(), source_subsystem in name(), level in telemetry_level(),
        metrics in prop::collection::vec((name(), real64(), name(), string_map()), 0..4),
        events in prop::collection::vec((name(), name(), telemetry_level(), string_map()), 0..3),
        health in prop::option::of((one_of(wire(esper_core::leyline::HealthStatus::ALL)), name(), string_map())),
        (part, parts) in (any::<u32>(), any::<u32>()))
        -> TelemetryPacket {
        TelemetryPacket {
            packet_id, timestamp, source_subsystem, level, part, parts,
            metrics: metrics.into_iter().map(|(name, value, unit, attributes)| MetricPoint { name, value, unit, attributes }).collect(),
            events: events.into_iter()
                .map(|(event_id, description, level, attributes)| TelemetryEvent { event_id, description, level, attributes })
                .collect(),
            system_health: health.map(|(status, summary, indicators)| SystemHealth { status, summary, indicators }),
        }
    }
}

prop_compose! {
    fn emergency()(version in any::<u32>(), level in one_of(wire(esper_core::leyline::EmergencyLevel::ALL)),
        reason in name(), origin in name(), triggered_at in timestamp(), monotonic_time_ms in any::<u64>(),
        run_id in name(), attributes in string_map(), payload_checksum in prop::collection::vec(any::<u8>(), 0..8))
        -> EmergencySignal {
        EmergencySignal { version, level, reason, origin, triggered_at, monotonic_time_ms, run_id, attributes,
            payload_checksum }
    }
}

prop_compose! {
    fn envelope()(message_type in one_of(wire(BusMessageType::ALL)), payload in prop::collection::vec(any::<u8>(), 0..64),
        attributes in string_map(), priority in one_of(wire(MessagePriority::ALL))) -> BusEnvelope {
        BusEnvelope { message_type, payload, attributes, priority }
    }
}

/// Encodes, decodes through the closed decoder, and demands equality both ways.
fn round_trips<M: Contract + PartialEq + serde::Serialize + serde::de::DeserializeOwned>(message: &M) {
    let bytes = message.encode_to_vec();
    let decoded = M::decode_closed(&bytes).expect("own encoding decodes");
    assert!(decoded == *message, "{} changed in a protobuf round trip", M::NAME);
    assert_eq!(decoded.encode_to_vec(), bytes, "{} re-encodes to different bytes", M::NAME);
    let json = serde_json::to_string(message).expect("serialises");
    let back: M = serde_json::from_str(&json).expect("deserialises");
    assert!(back == *message, "{} changed in a JSON round trip: {json}", M::NAME);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn system_state_round_trips(message in system_state()) { round_trips(&message) }

    #[test]
    fn adaptation_command_round_trips(message in adaptation_command()) { round_trips(&message) }

    #[test]
    fn field_report_round_trips(message in field_report()) { round_trips(&message) }

    #[test]
    fn telemetry_round_trips(message in telemetry()) { round_trips(&message) }

    #[test]
    fn emergency_signal_round_trips(message in emergency()) { round_trips(&message) }

    #[test]
    fn envelope_round_trips(message in envelope()) { round_trips(&message) }

    #[test]
    fn wrapped_messages_open_as_themselves_only(message in field_report()) {
        let envelope = BusEnvelope::wrap(&message, MessagePriority::Normal);
        prop_assert!(envelope.open::<FieldReport>().expect("opens") == message);
        let wrong = envelope.open::<TelemetryPacket>();
        prop_assert!(matches!(wrong, Err(DecodeError::WrongMessageType { .. })), "{wrong:?}");
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = SystemStatePacket::decode_closed(&bytes);
        let _ = AdaptationCommand::decode_closed(&bytes);
        let _ = FieldReport::decode_closed(&bytes);
        let _ = TelemetryPacket::decode_closed(&bytes);
        let _ = EmergencySignal::decode_closed(&bytes);
        let _ = BusEnvelope::decode_closed(&bytes);
        let mut verifier = Verifier::new(key(), VerifyPolicy { accept_unsigned: true, ..VerifyPolicy::default() });
        let _ = verifier.verify(&bytes, NOW_MS);
        // A frame-shaped prefix gets the bytes past the header check into the body parsers.
        let mut framed = signing::unsigned(&BusEnvelope::default(), NOW_MS, &mut rng(0));
        framed.truncate(FRAME_HEADER_LEN);
        framed.extend_from_slice(&bytes);
        let _ = verifier.verify(&framed, NOW_MS);
    }

    #[test]
    fn any_single_bit_flip_of_a_signed_frame_is_rejected(message in envelope(), bit in any::<prop::sample::Index>(),
        seed in any::<u64>()) {
        let frame = signing::sign(&key(), &message, NOW_MS, &mut rng(seed));
        let mut flipped = frame.clone();
        let at = bit.index(frame.len() * 8);
        flipped[at / 8] ^= 1 << (at % 8);
        let mut verifier = Verifier::new(key(), VerifyPolicy::default());
        let refused = verifier.verify(&flipped, NOW_MS);
        prop_assert!(refused.is_err(), "bit {at} flipped and the frame was still accepted");
        // The untouched frame is fine, so the refusal was the flip's doing.
        prop_assert!(Verifier::new(key(), VerifyPolicy::default()).verify(&frame, NOW_MS).is_ok());
    }

    #[test]
    fn replay_inside_the_window_is_refused_and_stale_outside(message in envelope(), later_ms in 0u64..=60_000,
        beyond_ms in 60_001u64..10_000_000, seed in any::<u64>()) {
        let frame = signing::sign(&key(), &message, NOW_MS, &mut rng(seed));
        let mut verifier = Verifier::new(key(), VerifyPolicy::default());
        prop_assert!(verifier.verify(&frame, NOW_MS).expect("fresh") == message);
        let replay = verifier.verify(&frame, NOW_MS + later_ms);
        prop_assert!(matches!(replay, Err(VerifyError::Replayed)), "{replay:?}");
        let stale = verifier.verify(&frame, NOW_MS + beyond_ms);
        prop_assert!(matches!(stale, Err(VerifyError::Stale { .. })), "{stale:?}");
        let counters = verifier.counters();
        prop_assert_eq!((counters.accepted, counters.rejected_replayed, counters.rejected_stale), (1, 1, 1));
    }
}

const NOW_MS: u64 = 1_767_225_600_000;

fn key() -> SigningKey {
    SigningKey::new(b"leyline-test-secret".to_vec()).expect("non-empty")
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn unknown_enum_value_is_a_typed_error_naming_the_field() {
    let command = AdaptationCommand { command_type: 42, ..AdaptationCommand::default() };
    let err = AdaptationCommand::decode_closed(&command.encode_to_vec()).expect_err("42 is not a CommandType");
    assert!(
        matches!(err, DecodeError::UnknownEnum { field: "command_type", enum_name: "CommandType", value: 42, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "AdaptationCommand: field `command_type` holds 42, which is not a known CommandType value"
    );
    let nested =
        SystemStatePacket { seed_states: vec![SeedState { stage: 99, ..SeedState::default() }], ..Default::default() };
    let err = SystemStatePacket::decode_closed(&nested.encode_to_vec()).expect_err("99 is not a stage");
    assert!(matches!(err, DecodeError::UnknownEnum { field: "seed_states.stage", value: 99, .. }), "{err:?}");
}

#[test]
fn unsigned_frames_are_refused_unless_allowed_and_then_counted() {
    let envelope = BusEnvelope::wrap(&FieldReport::default(), MessagePriority::Low);
    let frame = signing::unsigned(&envelope, NOW_MS, &mut rng(1));
    let mut strict = Verifier::new(key(), VerifyPolicy::default());
    assert!(matches!(strict.verify(&frame, NOW_MS), Err(VerifyError::MissingSignature)));
    assert_eq!(strict.counters().rejected_missing_signature, 1);
    let mut lenient = Verifier::new(key(), VerifyPolicy { accept_unsigned: true, ..VerifyPolicy::default() });
    assert!(lenient.verify(&frame, NOW_MS).expect("allowed") == envelope);
    assert_eq!(lenient.counters().unsigned_accepted, 1);
}

#[test]
fn wrong_secret_future_stamp_and_garbage_each_have_their_own_error() {
    let envelope = BusEnvelope::wrap(&TelemetryPacket::default(), MessagePriority::Normal);
    let other = SigningKey::new(b"another-secret".to_vec()).expect("non-empty");
    let mut verifier = Verifier::new(key(), VerifyPolicy::default());
    let forged = signing::sign(&other, &envelope, NOW_MS, &mut rng(2));
    assert!(matches!(verifier.verify(&forged, NOW_MS), Err(VerifyError::BadMac)));
    let early = signing::sign(&key(), &envelope, NOW_MS + 5_001, &mut rng(3));
    assert!(matches!(
        verifier.verify(&early, NOW_MS),
        Err(VerifyError::FromFuture { ahead_ms: 5_001, skew_ms: 5_000 })
    ));
    assert!(matches!(verifier.verify(b"RESP", NOW_MS), Err(VerifyError::Frame(_))));
    let c = verifier.counters();
    assert_eq!((c.rejected_bad_mac, c.rejected_future, c.rejected_malformed, c.accepted), (1, 1, 1, 0));
}

/// At 40 000 frames a second (the policy's default rate), 20 000 frames pass in
/// half a second: the first is still fresh, so replaying it must still be refused.
/// (Esper-Lite's 10 000-entry ledger had evicted it and accepted the replay.)
#[test]
fn a_frame_replayed_after_20_000_other_frames_inside_the_window_is_refused() {
    let envelope = BusEnvelope::wrap(&TelemetryPacket::default(), MessagePriority::Normal);
    let mut verifier = Verifier::new(key(), VerifyPolicy::default());
    let mut nonces = rng(7);
    let first = signing::sign(&key(), &envelope, NOW_MS, &mut nonces);
    verifier.verify(&first, NOW_MS).expect("fresh");
    for n in 0..20_000_u64 {
        let at_ms = NOW_MS + n / 40;
        let frame = signing::sign(&key(), &envelope, at_ms, &mut nonces);
        verifier.verify(&frame, at_ms).expect("a fresh frame at the policy's rate is accepted");
    }
    let replay = verifier.verify(&first, NOW_MS + 500);
    assert!(matches!(replay, Err(VerifyError::Replayed)), "{replay:?}");
    assert_eq!(verifier.counters().rejected_replayed, 1);
}

/// Past its rate the verifier refuses new frames (counted) rather than forgetting
/// a live nonce, and a replay of an early frame is still caught.
#[test]
fn a_full_replay_check_refuses_new_frames_and_still_catches_replays() {
    let envelope = BusEnvelope::wrap(&TelemetryPacket::default(), MessagePriority::Normal);
    let policy = VerifyPolicy { max_frames_per_s: 10, ..VerifyPolicy::default() };
    let capacity = policy.nonce_capacity();
    assert_eq!(capacity, 660, "10 frames a second over 60 s + 5 s skew + 1 s bucket");
    let mut verifier = Verifier::new(key(), policy);
    let mut nonces = rng(8);
    let frames: Vec<Vec<u8>> = (0..=capacity).map(|_| signing::sign(&key(), &envelope, NOW_MS, &mut nonces)).collect();
    for frame in &frames[..capacity] {
        verifier.verify(frame, NOW_MS).expect("room for it");
    }
    let refused = verifier.verify(&frames[capacity], NOW_MS);
    assert!(matches!(refused, Err(VerifyError::LedgerFull { capacity: 660 })), "{refused:?}");
    assert!(matches!(verifier.verify(&frames[0], NOW_MS + 1), Err(VerifyError::Replayed)));
    let counters = verifier.counters();
    assert_eq!((counters.rejected_ledger_full, counters.rejected_replayed), (1, 1));
    let later = signing::sign(&key(), &envelope, NOW_MS + 61_000, &mut nonces);
    assert!(verifier.verify(&later, NOW_MS + 61_000).is_ok(), "room again once the window has passed");
}

#[test]
fn signing_key_refuses_an_empty_secret() {
    assert!(SigningKey::new(Vec::new()).is_err());
    assert!(!format!("{:?}", key()).contains("leyline-test-secret"), "Debug must not leak the secret");
}

#[test]
fn every_bit_of_a_realistic_signed_command_is_covered() {
    let command = AdaptationCommand {
        version: 1,
        command_id: "run-7-cmd-42".into(),
        command_type: CommandType::Seed.into(),
        target_seed_id: "seed-1".into(),
        issued_at: Some(Timestamp::from_millis(NOW_MS)),
        issued_by: "tamiyo".into(),
        payload: Some(CommandPayload::SeedOperation(CommandSeedOperation {
            operation: esper_core::leyline::SeedOperation::Germinate.into(),
            blueprint_id: "BP001".into(),
            parameters: [("alpha".to_owned(), 0.1)].into(),
        })),
        ..AdaptationCommand::default()
    };
    let frame = signing::sign(&key(), &BusEnvelope::wrap(&command, MessagePriority::High), NOW_MS, &mut rng(9));
    for bit in 0..frame.len() * 8 {
        let mut flipped = frame.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let mut verifier = Verifier::new(key(), VerifyPolicy::default());
        assert!(verifier.verify(&flipped, NOW_MS).is_err(), "flipping bit {bit} went unnoticed");
    }
}
