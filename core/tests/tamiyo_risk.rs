//! The risk engine: check order, vetoes and warnings, conservative mode.

mod tamiyo_support;

use esper_core::leyline::BlueprintTier;
use esper_core::leyline::{HardwareContext, SystemStatePacket, TelemetryEvent, TelemetryLevel};
use esper_core::tamiyo::metadata::MetadataError;
use esper_core::tamiyo::risk::{RISK_ORDER, RiskInputs, keys};
use esper_core::tamiyo::{BlueprintMetadata, PolicyAction, PolicyDecision, RiskConfig, RiskEngine, TamiyoTimeoutError};
use tamiyo_support::packet;

/// Everything that can be wrong at once; each flag trips one check.
#[derive(Debug, Clone, Copy)]
struct Trouble {
    policy_risk: bool,
    conservative: bool,
    over_budget: bool,
    quarantined_blueprint: bool,
    loss_spike: bool,
    hook_budget: bool,
    isolation: bool,
}

const ALL_TROUBLE: Trouble = Trouble {
    policy_risk: true,
    conservative: true,
    over_budget: true,
    quarantined_blueprint: true,
    loss_spike: true,
    hook_budget: true,
    isolation: true,
};

fn germinate() -> PolicyDecision {
    PolicyDecision {
        action: PolicyAction::Germinate { seed_id: "seed-a".into(), blueprint_id: "BP043".into(), alpha: 0.1 },
        loss: 1.0,
        loss_delta: 0.0,
        window_change: Some(0.0),
        risk: 0.0,
    }
}

fn blueprint(risk: f32, quarantine_only: bool) -> Result<BlueprintMetadata, MetadataError> {
    Ok(BlueprintMetadata {
        blueprint_id: "BP043".into(),
        name: "wide_conv_unstable".into(),
        tier: BlueprintTier::HighRisk,
        risk,
        quarantine_only,
        approval_required: true,
    })
}

/// Clears one kind of trouble.
type Clear = fn(&mut Trouble);

/// Builds the inputs for `trouble` and asks a fresh engine for the reason.
fn reason_for(trouble: Trouble) -> Option<&'static str> {
    let mut decision = germinate();
    decision.risk = if trouble.policy_risk { 0.99 } else { 0.1 };
    decision.loss_delta = if trouble.loss_spike { 0.2 } else { 0.0 };
    let mut packet = packet(10, 1.0);
    if trouble.hook_budget {
        packet.training_metrics.insert(keys::HOOK_LATENCY_MS.into(), 51.0);
    }
    if trouble.isolation {
        packet.training_metrics.insert(keys::ISOLATION_VIOLATIONS.into(), 1.0);
    }
    let lookup = blueprint(if trouble.quarantined_blueprint { 0.95 } else { 0.1 }, trouble.quarantined_blueprint);
    let mut engine = RiskEngine::new(RiskConfig::default(), trouble.conservative);
    let inputs = RiskInputs {
        packet: &packet,
        decision: &decision,
        blueprint: Some(&lookup),
        over_step_budget: trouble.over_budget,
    };
    engine.assess(&inputs).pause_reason
}

/// Clearing the troubles one at a time, in Esper-Lite's order, moves the reason down
/// the order: each check wins over every later one.
#[test]
fn first_check_in_esper_lite_order_names_the_reason() {
    assert_eq!(
        RISK_ORDER,
        [
            "policy_risk",
            "conservative_mode",
            "timeouts",
            "blueprint_risk",
            "loss_metrics",
            "latency",
            "isolation_and_device"
        ]
    );
    let clears: [(Clear, Option<&str>); 7] = [
        (|t| t.policy_risk = false, Some("conservative_mode")),
        (|t| t.conservative = false, Some("timeout_inference")),
        (|t| t.over_budget = false, Some("bp_quarantine")),
        (|t| t.quarantined_blueprint = false, Some("loss_spike")),
        (|t| t.loss_spike = false, Some("hook_budget")),
        (|t| t.hook_budget = false, Some("isolation_violation")),
        (|t| t.isolation = false, None),
    ];
    let mut trouble = ALL_TROUBLE;
    assert_eq!(reason_for(trouble), Some("policy_risk"));
    for (clear, expected) in clears {
        clear(&mut trouble);
        assert_eq!(reason_for(trouble), expected, "after clearing up to {trouble:?}");
    }
}

fn assess(
    engine: &mut RiskEngine,
    packet: &SystemStatePacket,
    decision: &PolicyDecision,
    lookup: Option<&Result<BlueprintMetadata, MetadataError>>,
    over: bool,
) -> (Option<&'static str>, Vec<TelemetryEvent>) {
    let verdict = engine.assess(&RiskInputs { packet, decision, blueprint: lookup, over_step_budget: over });
    (verdict.pause_reason, verdict.events)
}

fn ids(events: &[TelemetryEvent]) -> Vec<&str> {
    events.iter().map(|e| e.description.as_str()).collect()
}

#[test]
fn quarantine_pauses_with_bp_quarantine_and_pause_triggered_events() {
    let mut engine = RiskEngine::new(RiskConfig::default(), false);
    for lookup in
        [blueprint(0.8, false), blueprint(0.1, true), Err(MetadataError::Unknown { blueprint_id: "BP999".into() })]
    {
        let (reason, events) = assess(&mut engine, &packet(1, 1.0), &germinate(), Some(&lookup), false);
        assert_eq!(reason, Some("bp_quarantine"), "{lookup:?}");
        assert_eq!(ids(&events), ["bp_quarantine", "pause_triggered"]);
        assert_eq!(events[1].attributes.get("reason").map(String::as_str), Some("bp_quarantine"));
    }
    let (reason, events) = assess(&mut engine, &packet(1, 1.0), &germinate(), Some(&blueprint(0.7, false)), false);
    assert_eq!((reason, ids(&events)), (None, vec!["bp_risk_elevated"]), "0.5 <= risk < 0.8 only warns");
}

#[test]
fn warnings_let_the_command_through() {
    let mut engine = RiskEngine::new(RiskConfig::default(), false);
    let mut decision = germinate();
    decision.loss_delta = 0.1;
    decision.risk = 0.9;
    let mut packet = packet(1, 1.0);
    packet.training_metrics.insert(keys::STEP_LATENCY_MS.into(), 121.0);
    packet.training_metrics.insert(keys::KASMINA_APPLY_MS.into(), 31.0);
    let (reason, events) = assess(&mut engine, &packet, &decision, Some(&blueprint(0.1, false)), false);
    assert_eq!(reason, None);
    assert_eq!(ids(&events), ["policy_risk_elevated", "loss_warning", "step_latency_high", "kasmina_latency_high"]);
}

#[test]
fn seed_isolation_and_device_pressure_pause() {
    let mut engine = RiskEngine::new(RiskConfig::default(), false);
    let mut isolated = packet(1, 1.0);
    let mut seed = tamiyo_support::seed("seed-a", esper_core::leyline::SeedLifecycleStage::Training, 1.0, 0.1);
    seed.metrics.insert(keys::SEED_ISOLATION_VIOLATIONS.into(), 2.0);
    isolated.seed_states.push(seed);
    assert_eq!(assess(&mut engine, &isolated, &germinate(), None, false).0, Some("isolation_violation"));
    let mut busy = packet(1, 1.0);
    busy.hardware_context = Some(HardwareContext { utilization_percent: 96.0, ..HardwareContext::default() });
    assert_eq!(assess(&mut engine, &busy, &germinate(), None, false).0, Some("device_pressure"));
}

#[test]
fn metadata_timeout_is_reported_critical_even_when_an_earlier_check_decides() {
    let timeout = Err(MetadataError::Timeout(TamiyoTimeoutError {
        operation: "urza_metadata",
        blueprint_id: "BP001".into(),
        timeout_ms: 25,
    }));
    let mut engine = RiskEngine::new(RiskConfig::default(), false);
    let (reason, events) = assess(&mut engine, &packet(1, 1.0), &germinate(), Some(&timeout), false);
    assert_eq!(reason, Some("timeout_urza"));
    assert_eq!(ids(&events), ["timeout_urza", "pause_triggered"]);
    assert_eq!(events[0].level, i32::from(TelemetryLevel::Critical));
    let mut careful = RiskEngine::new(RiskConfig::default(), true);
    let (reason, events) = assess(&mut careful, &packet(2, 1.0), &germinate(), Some(&timeout), false);
    assert_eq!(reason, Some("conservative_mode"));
    assert_eq!(ids(&events), ["timeout_urza", "pause_triggered"]);
}

#[test]
fn over_budget_enters_conservative_mode_which_recovers_after_three_good_evaluations() {
    let mut engine = RiskEngine::new(RiskConfig::default(), false);
    let decision = germinate();
    let ok = blueprint(0.1, false);
    let mut reasons = Vec::new();
    let mut events = Vec::new();
    for over in [true, false, false, false, false] {
        let (reason, step_events) = assess(&mut engine, &packet(1, 1.0), &decision, Some(&ok), over);
        reasons.push(reason);
        events.extend(
            step_events
                .into_iter()
                .map(|e| e.description)
                .filter(|id| id.starts_with("conservative") || id.starts_with("timeout")),
        );
    }
    assert_eq!(
        reasons,
        [
            Some("timeout_inference"),
            Some("conservative_mode"),
            Some("conservative_mode"),
            Some("conservative_mode"),
            None
        ]
    );
    assert_eq!(events, ["timeout_inference", "conservative_mode_entered", "conservative_mode_exited"]);
    assert!(!engine.conservative_mode());
}

#[test]
fn operator_conservative_mode_holds_through_good_evaluations() {
    let mut engine = RiskEngine::new(RiskConfig::default(), true);
    let ok = blueprint(0.1, false);
    for step in 0..10 {
        assert_eq!(
            assess(&mut engine, &packet(step, 1.0), &germinate(), Some(&ok), false).0,
            Some("conservative_mode")
        );
    }
    assert!(engine.conservative_mode(), "only conservative mode entered on a timeout recovers");
}
