//! Gradient isolation, signed commands and gates, as an operator sees them: an
//! injected host↔seed leak is detected, counted and shown in telemetry, strict mode
//! fails fast, the gates it blocks say why, and unsigned commands never get in.

use esper_core::kasmina::isolation::STRICT_ISOLATION_ENV;
use esper_core::kasmina::{CommandIntake, KasminaConfig, KasminaError, Kernel, KernelSource, SeedManager};
use esper_core::leyline::signing::{sign, unsigned};
use esper_core::leyline::{
    AdaptationCommand, BusEnvelope, CommandPayload, CommandSeedOperation, CommandType, HealthStatus, MessagePriority,
    SeedLifecycleStage as Stage, SeedOperation, SigningKey, TELEMETRY_BYTE_LIMIT, TelemetryPacket, VerifyPolicy,
};
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn germinate(seed: &str) -> AdaptationCommand {
    AdaptationCommand {
        command_id: format!("cmd-{seed}"),
        command_type: CommandType::Seed.into(),
        target_seed_id: seed.to_owned(),
        payload: Some(CommandPayload::SeedOperation(CommandSeedOperation {
            operation: SeedOperation::Germinate.into(),
            blueprint_id: "BP007".to_owned(),
            parameters: [("alpha".to_owned(), 0.1)].into(),
        })),
        ..AdaptationCommand::default()
    }
}

fn config() -> KasminaConfig {
    KasminaConfig { training_steps: 2, probation_steps: 2, embargo_steps: 2, ..KasminaConfig::default() }
}

/// Host gradient on parameters 0..4, seed gradient on 4..8: disjoint supports.
const HOST: [f32; 8] = [0.3, -0.2, 0.1, 0.05, 0.0, 0.0, 0.0, 0.0];
const SEED: [f32; 8] = [0.0, 0.0, 0.0, 0.0, 0.4, -0.1, 0.2, 0.3];

fn leaky_seed() -> [f32; 8] {
    let mut leaky = SEED;
    leaky[1] = 0.01; // the seed's branch reaches a host parameter
    leaky
}

fn metric(packets: &[TelemetryPacket], name: &str) -> Option<f64> {
    packets.iter().find_map(|packet| packet.metric(name))
}

fn events<'a>(
    packets: &'a [TelemetryPacket],
    name: &'a str,
) -> impl Iterator<Item = &'a esper_core::leyline::TelemetryEvent> {
    packets.iter().flat_map(|p| &p.events).filter(move |e| e.description == name)
}

#[test]
fn an_injected_leak_is_detected_counted_and_shown_in_telemetry_and_blocks_the_gate() {
    let mut manager = SeedManager::new(config());
    manager.apply(&germinate("seed-1")).expect("germinates");
    assert_eq!(manager.check_isolation("seed-1", &HOST, &SEED), Ok(0.0), "disjoint gradients are isolated");
    let overlap = manager.check_isolation("seed-1", &HOST, &leaky_seed()).expect("non-strict: counted, not an error");
    assert!((overlap - 0.002).abs() < 1e-9, "overlap {overlap}");
    assert_eq!(manager.counters().isolation_violations, 1);
    assert_eq!(manager.health("seed-1"), Some(HealthStatus::Degraded));
    manager.advance(); // G1 sees the violation: the seed is culled, not trained
    assert_eq!(manager.stage("seed-1"), Some(Stage::Embargoed));

    let packets = manager.telemetry(1_000);
    assert!(packets.iter().all(|p| p.encoded_len() <= TELEMETRY_BYTE_LIMIT));
    assert_eq!(metric(&packets, "kasmina.isolation.violations"), Some(1.0));
    assert_eq!(metric(&packets, "kasmina.gate.failures"), Some(1.0));
    let violation = events(&packets, "violation_recorded").next().expect("violation_recorded event");
    assert_eq!(violation.attributes["seed"], "seed-1");
    assert_eq!(
        events(&packets, "seed_health").next().map(|e| e.attributes["health"].as_str()),
        Some("HEALTH_STATUS_DEGRADED")
    );
    let failure = events(&packets, "gate_failure").next().expect("gate_failure event");
    assert_eq!(
        (failure.attributes["gate"].as_str(), failure.attributes["reason"].as_str()),
        ("G1_GRADIENT_HEALTH", "isolation_violations")
    );
}

#[test]
fn strict_isolation_fails_fast_on_the_first_leak() {
    let strict = config().with_lookup(|var| (var == STRICT_ISOLATION_ENV).then(|| "1".to_owned())).expect("a flag");
    assert!(strict.strict_isolation);
    let mut manager = SeedManager::new(strict);
    manager.apply(&germinate("seed-1")).expect("germinates");
    assert_eq!(manager.check_isolation("seed-1", &HOST, &SEED), Ok(0.0));
    let error = manager.check_isolation("seed-1", &HOST, &leaky_seed()).expect_err("strict mode fails fast");
    assert!(matches!(&error, KasminaError::IsolationViolation { seed, .. } if seed == "seed-1"), "{error}");
    assert!(error.to_string().contains("strict isolation"), "{error}");
    assert_eq!(manager.counters().isolation_violations, 1, "still counted");
    let packets = manager.telemetry(1_000);
    assert_eq!(metric(&packets, "kasmina.isolation.violations"), Some(1.0));
    assert_eq!(events(&packets, "violation_recorded").count(), 1);
    let lenient = config().with_lookup(|_| Some("0".to_owned())).expect("a flag");
    assert!(!lenient.strict_isolation);
}

#[test]
fn a_clean_seed_passes_every_gate_with_each_condition_in_telemetry() {
    let mut manager = SeedManager::new(config());
    manager.apply(&germinate("seed-1")).expect("germinates");
    for _ in 0..40 {
        manager.check_isolation("seed-1", &HOST, &SEED).expect("isolated");
        manager.advance();
    }
    assert_eq!(manager.stage("seed-1"), Some(Stage::Fossilized));
    let packets = manager.telemetry(2_000);
    let gates: Vec<(String, String, String)> = events(&packets, "gate_event")
        .map(|e| (e.attributes["gate"].clone(), e.attributes["passed"].clone(), e.attributes["condition"].clone()))
        .collect();
    let names: Vec<&str> = gates.iter().map(|(gate, _, _)| gate.as_str()).collect();
    assert_eq!(names, ["G0", "G1_GRADIENT_HEALTH", "G2_STABILITY", "G3_INTERFACE", "G4_SYSTEM_IMPACT"]);
    assert!(gates.iter().all(|(_, passed, condition)| passed == "true" && !condition.is_empty()), "{gates:?}");
    assert_eq!(metric(&packets, "kasmina.seed.stage"), Some(f64::from(i32::from(Stage::Fossilized))));
    assert_eq!(metric(&packets, "kasmina.seed.alpha"), Some(1.0));
    assert_eq!(metric(&packets, "kasmina.seed.health"), Some(f64::from(i32::from(HealthStatus::Healthy))));
}

#[test]
fn a_seed_waiting_for_its_kernel_stays_germinated_and_the_fallback_fails_g4() {
    let mut manager = SeedManager::new(KasminaConfig { builtin_kernels: false, ..config() });
    manager.apply(&germinate("seed-1")).expect("germinates");
    for _ in 0..5 {
        manager.advance();
    }
    assert_eq!(manager.stage("seed-1"), Some(Stage::Germinated), "no kernel, no training");
    assert_eq!(manager.awaiting_kernels(), [("seed-1".to_owned(), "BP007".to_owned())]);
    let fallback = Kernel {
        blueprint_id: "BP001".to_owned(),
        artifact_ref: "builtin://BP001".to_owned(),
        source: KernelSource::Fallback,
        prewarm_ms: 0.0,
    };
    manager.attach_kernel("seed-1", fallback.clone()).expect("attached");
    assert!(matches!(manager.attach_kernel("seed-1", fallback), Err(KasminaError::NotAwaitingKernel { .. })));
    for _ in 0..40 {
        manager.advance();
    }
    assert_eq!(manager.stage("seed-1"), Some(Stage::Dormant), "culled at G4, embargoed, reset");
    let failure = manager.take_events().into_iter().find(|e| e.description == "gate_failure").expect("gate_failure");
    assert_eq!(failure.attributes["reason"], "fallback_kernel_active");
    assert_eq!(failure.level, esper_core::leyline::TelemetryLevel::Critical as i32);
}

#[test]
fn only_signed_commands_get_in() {
    let key = SigningKey::new(b"kasmina-test".to_vec()).expect("key");
    let mut intake = CommandIntake::new(key.clone(), VerifyPolicy::default());
    let mut manager = SeedManager::new(config());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let envelope = |seed: &str| BusEnvelope::wrap(&germinate(seed), MessagePriority::Normal);

    intake.apply(&mut manager, &sign(&key, &envelope("seed-1"), 1_000, &mut rng), 1_000).expect("signed: applied");
    assert_eq!(manager.stage("seed-1"), Some(Stage::Germinated));

    let error =
        intake.apply(&mut manager, &unsigned(&envelope("seed-2"), 1_000, &mut rng), 1_000).expect_err("unsigned");
    assert_eq!(error, KasminaError::Unsigned);
    let stranger = SigningKey::new(b"someone-else".to_vec()).expect("key");
    let forged = sign(&stranger, &envelope("seed-3"), 1_000, &mut rng);
    assert!(matches!(intake.apply(&mut manager, &forged, 1_000), Err(KasminaError::BadCommand(_))));
    let replayed = sign(&key, &envelope("seed-4"), 1_000, &mut rng);
    intake.apply(&mut manager, &replayed, 1_000).expect("first time");
    assert!(matches!(intake.apply(&mut manager, &replayed, 1_001), Err(KasminaError::BadCommand(_))), "replay");

    assert_eq!(manager.stage("seed-2"), None);
    assert_eq!(manager.stage("seed-3"), None);
    let counters = intake.counters();
    assert_eq!((counters.accepted, counters.unsigned_rejected, counters.invalid_rejected), (2, 1, 2));
    assert_eq!(manager.counters().commands_rejected, 3);
    let rejected = manager.take_events().into_iter().filter(|e| e.description == "command_rejected").count();
    assert_eq!(rejected, 3);
}
