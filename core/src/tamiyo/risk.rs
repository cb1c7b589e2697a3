//! The risk engine: the last word before a command leaves Tamiyo.
//!
//! The policy proposes; the risk engine may veto the proposal into a PAUSE. Its
//! checks run in Esper-Lite's order and the first one that vetoes names the reason
//! (`annotations["risk_reason"]`), so a reason always points at the most fundamental
//! problem: a policy that distrusts itself, then conservative mode, then timeouts,
//! then the blueprint, the loss, latency budgets, and isolation/device health. Checks
//! that only warn add an event and let the command through. Every PAUSE adds a
//! `pause_triggered` event.
//!
//! Conservative mode is state: an operator starts Tamiyo in it
//! (`TAMIYO_CONSERVATIVE_MODE`; held for the process's life: nothing in Esper
//! switches a running Tamiyo), or an evaluation over the step budget
//! (`timeout_inference`) enters it; entered that way, it ends after a run of
//! evaluations within budget (Esper-Lite's `conservative_recovery`).

use crate::leyline::{SystemStatePacket, TelemetryEvent, TelemetryLevel};

use super::metadata::{BlueprintMetadata, MetadataError};
use super::policy::{PolicyAction, PolicyDecision};

/// Thresholds, with Esper-Lite's values.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskConfig {
    /// Policy risk at or above this pauses anything (0.98).
    pub policy_risk_pause: f32,
    /// Policy risk at or above this warns on a seed command (0.85).
    pub policy_risk_warn_seed: f32,
    /// Blueprint risk at or above this quarantines it (0.8).
    pub blueprint_risk_pause: f32,
    /// Blueprint risk at or above this warns (0.5).
    pub blueprint_risk_warn: f32,
    /// A smoothed-loss rise above this is a spike (0.15).
    pub loss_spike_pause: f32,
    /// A rise above this warns (0.075).
    pub loss_spike_warn: f32,
    /// Tolaria's hook latency above this breaks the hook budget (50 ms).
    pub hook_budget_ms: f32,
    /// Step latency above this warns (120 ms).
    pub step_latency_warn_ms: f32,
    /// Kasmina apply or finalize latency above this warns (30 ms).
    pub kasmina_latency_warn_ms: f32,
    /// Device utilisation at or above this pauses (95 %).
    pub device_utilization_pause_percent: f32,
    /// Evaluations within budget that end a timeout-entered conservative mode.
    pub recovery_evaluations: u32,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            policy_risk_pause: 0.98,
            policy_risk_warn_seed: 0.85,
            blueprint_risk_pause: 0.8,
            blueprint_risk_warn: 0.5,
            loss_spike_pause: 0.15,
            loss_spike_warn: 0.075,
            hook_budget_ms: 50.0,
            step_latency_warn_ms: 120.0,
            kasmina_latency_warn_ms: 30.0,
            device_utilization_pause_percent: 95.0,
            recovery_evaluations: 3,
        }
    }
}

/// `training_metrics` keys the latency and isolation checks read.
pub mod keys {
    /// Tolaria's Tamiyo + Kasmina hook time at the previous step.
    pub const HOOK_LATENCY_MS: &str = "hook_latency_ms";
    /// Tolaria's whole step time.
    pub const STEP_LATENCY_MS: &str = "step_latency_ms";
    /// Kasmina's command apply time.
    pub const KASMINA_APPLY_MS: &str = "kasmina.apply_ms";
    /// Kasmina's end-of-step time.
    pub const KASMINA_FINALIZE_MS: &str = "kasmina.finalize_ms";
    /// Gradient isolation violations, in `training_metrics` (Nissa's metric name) or a
    /// seed's `metrics` (`isolation_violations`).
    pub const ISOLATION_VIOLATIONS: &str = "kasmina.isolation.violations";
    /// The per-seed form of [`ISOLATION_VIOLATIONS`].
    pub const SEED_ISOLATION_VIOLATIONS: &str = "isolation_violations";
}

/// The order the checks run in (names as in Esper-Lite).
pub const RISK_ORDER: [&str; 7] = [
    "policy_risk",
    "conservative_mode",
    "timeouts",
    "blueprint_risk",
    "loss_metrics",
    "latency",
    "isolation_and_device",
];

/// What the engine is shown for one decision.
#[derive(Debug, Clone, Copy)]
pub struct RiskInputs<'a> {
    pub packet: &'a SystemStatePacket,
    pub decision: &'a PolicyDecision,
    /// The proposed blueprint's lookup, when the decision names one.
    pub blueprint: Option<&'a Result<BlueprintMetadata, MetadataError>>,
    /// Whether the evaluation so far took longer than the step budget.
    pub over_step_budget: bool,
}

/// The engine's ruling on one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskVerdict {
    /// Why the command is turned into a PAUSE; `None` lets it through.
    pub pause_reason: Option<&'static str>,
    /// Warnings, vetoes and timeouts, for telemetry.
    pub events: Vec<TelemetryEvent>,
    /// The proposed blueprint's risk (0 when none; 1 when it could not be had).
    pub blueprint_risk: f32,
}

/// Why conservative mode is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConservativeCause {
    Operator,
    InferenceTimeout { healthy_evaluations: u32 },
}

type Check = fn(&RiskEngine, &RiskInputs<'_>, &mut Vec<TelemetryEvent>) -> Option<&'static str>;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RiskEngine {
    config: RiskConfig,
    conservative: Option<ConservativeCause>,
}

impl RiskEngine {
    /// An engine, in conservative mode from the start if `conservative`.
    pub fn new(config: RiskConfig, conservative: bool) -> Self {
        assert!(config.recovery_evaluations > 0, "conservative recovery needs at least one evaluation");
        Self { config, conservative: conservative.then_some(ConservativeCause::Operator) }
    }

    /// Whether conservative mode is on.
    pub fn conservative_mode(&self) -> bool {
        self.conservative.is_some()
    }

    /// Rules on one decision; see the module docs.
    pub fn assess(&mut self, inputs: &RiskInputs<'_>) -> RiskVerdict {
        const CHECKS: [Check; RISK_ORDER.len()] = [
            RiskEngine::policy_risk,
            RiskEngine::conservative,
            RiskEngine::timeouts,
            RiskEngine::blueprint_risk,
            RiskEngine::loss_metrics,
            RiskEngine::latency,
            RiskEngine::isolation_and_device,
        ];
        let mut events = Vec::new();
        let pause_reason = CHECKS.iter().find_map(|check| check(self, inputs, &mut events));
        self.observe_timeouts(inputs, &mut events);
        if let Some(reason) = pause_reason {
            events.push(event("pause_triggered", TelemetryLevel::Warning, &[("reason", reason)]));
        }
        let blueprint_risk = match inputs.blueprint {
            None => 0.0,
            Some(Ok(metadata)) => metadata.risk,
            Some(Err(_)) => 1.0,
        };
        RiskVerdict { pause_reason, events, blueprint_risk }
    }

    fn policy_risk(&self, inputs: &RiskInputs<'_>, events: &mut Vec<TelemetryEvent>) -> Option<&'static str> {
        let risk = inputs.decision.risk;
        if risk >= self.config.policy_risk_pause {
            return Some("policy_risk");
        }
        let seed_command = matches!(inputs.decision.action, PolicyAction::Germinate { .. });
        if seed_command && risk >= self.config.policy_risk_warn_seed {
            events.push(event("policy_risk_elevated", TelemetryLevel::Warning, &[("risk", &format!("{risk:.3}"))]));
        }
        None
    }

    fn conservative(&self, _: &RiskInputs<'_>, _: &mut Vec<TelemetryEvent>) -> Option<&'static str> {
        self.conservative.map(|_| "conservative_mode")
    }

    fn timeouts(&self, inputs: &RiskInputs<'_>, _: &mut Vec<TelemetryEvent>) -> Option<&'static str> {
        if inputs.over_step_budget {
            return Some("timeout_inference");
        }
        match inputs.blueprint {
            Some(Err(error @ (MetadataError::Timeout(_) | MetadataError::BreakerOpen { .. }))) => Some(error.reason()),
            _ => None,
        }
    }

    fn blueprint_risk(&self, inputs: &RiskInputs<'_>, events: &mut Vec<TelemetryEvent>) -> Option<&'static str> {
        let (blueprint_id, quarantined, risk) = match inputs.blueprint {
            Some(Ok(metadata)) => (metadata.blueprint_id.as_str(), metadata.quarantine_only, metadata.risk),
            Some(Err(MetadataError::Unknown { blueprint_id })) => (blueprint_id.as_str(), true, 1.0),
            _ => return None,
        };
        if quarantined || risk >= self.config.blueprint_risk_pause {
            let risk = format!("{risk:.3}");
            events.push(event(
                "bp_quarantine",
                TelemetryLevel::Warning,
                &[("blueprint", blueprint_id), ("risk", &risk)],
            ));
            return Some("bp_quarantine");
        }
        if risk >= self.config.blueprint_risk_warn {
            events.push(event("bp_risk_elevated", TelemetryLevel::Warning, &[("blueprint", blueprint_id)]));
        }
        None
    }

    fn loss_metrics(&self, inputs: &RiskInputs<'_>, events: &mut Vec<TelemetryEvent>) -> Option<&'static str> {
        let delta = inputs.decision.loss_delta;
        if delta > self.config.loss_spike_pause {
            return Some("loss_spike");
        }
        if delta > self.config.loss_spike_warn {
            events.push(event("loss_warning", TelemetryLevel::Warning, &[("loss_delta", &format!("{delta:.4}"))]));
        }
        None
    }

    fn latency(&self, inputs: &RiskInputs<'_>, events: &mut Vec<TelemetryEvent>) -> Option<&'static str> {
        let metric = |key: &str| inputs.packet.training_metrics.get(key).copied().unwrap_or(0.0);
        if metric(keys::HOOK_LATENCY_MS) > self.config.hook_budget_ms {
            return Some("hook_budget");
        }
        if metric(keys::STEP_LATENCY_MS) > self.config.step_latency_warn_ms {
            events.push(event("step_latency_high", TelemetryLevel::Warning, &[]));
        }
        let kasmina_ms = metric(keys::KASMINA_APPLY_MS).max(metric(keys::KASMINA_FINALIZE_MS));
        if kasmina_ms > self.config.kasmina_latency_warn_ms {
            events.push(event("kasmina_latency_high", TelemetryLevel::Warning, &[]));
        }
        None
    }

    fn isolation_and_device(&self, inputs: &RiskInputs<'_>, _: &mut Vec<TelemetryEvent>) -> Option<&'static str> {
        let packet = inputs.packet;
        let global = packet.training_metrics.get(keys::ISOLATION_VIOLATIONS).copied().unwrap_or(0.0);
        let per_seed = packet.seed_states.iter().filter_map(|s| s.metrics.get(keys::SEED_ISOLATION_VIOLATIONS));
        if global > 0.0 || per_seed.copied().any(|violations| violations > 0.0) {
            return Some("isolation_violation");
        }
        let utilization = packet.hardware_context.as_ref().map_or(0.0, |hw| hw.utilization_percent);
        (utilization >= self.config.device_utilization_pause_percent).then_some("device_pressure")
    }

    /// Records timeouts whatever check decided: enters (or keeps) conservative mode
    /// on an over-budget evaluation, counts healthy ones towards recovery, and reports
    /// metadata timeouts (`timeout_urza`, CRITICAL).
    fn observe_timeouts(&mut self, inputs: &RiskInputs<'_>, events: &mut Vec<TelemetryEvent>) {
        match inputs.blueprint {
            Some(Err(MetadataError::Timeout(error))) => {
                let (blueprint, timeout_ms) = (error.blueprint_id.as_str(), error.timeout_ms.to_string());
                let attributes = [("blueprint", blueprint), ("timeout_ms", timeout_ms.as_str())];
                events.push(event("timeout_urza", TelemetryLevel::Critical, &attributes));
            }
            Some(Err(MetadataError::BreakerOpen { blueprint_id })) => {
                events.push(event("metadata_breaker_open", TelemetryLevel::Warning, &[("blueprint", blueprint_id)]));
            }
            _ => {}
        }
        let recovery = self.config.recovery_evaluations;
        self.conservative = match (self.conservative, inputs.over_step_budget) {
            (Some(ConservativeCause::Operator), _) => Some(ConservativeCause::Operator),
            (previous, true) => {
                events.push(event("timeout_inference", TelemetryLevel::Warning, &[]));
                if previous.is_none() {
                    events.push(event("conservative_mode_entered", TelemetryLevel::Warning, &[]));
                }
                Some(ConservativeCause::InferenceTimeout { healthy_evaluations: 0 })
            }
            (Some(ConservativeCause::InferenceTimeout { healthy_evaluations }), false) => {
                let healthy_evaluations = healthy_evaluations + 1;
                if healthy_evaluations >= recovery {
                    events.push(event("conservative_mode_exited", TelemetryLevel::Info, &[]));
                    None
                } else {
                    Some(ConservativeCause::InferenceTimeout { healthy_evaluations })
                }
            }
            (None, false) => None,
        };
    }
}

/// A telemetry event named `name`, the way every subsystem names them
/// ([`TelemetryEvent::named`]).
pub(crate) fn event(name: &str, level: TelemetryLevel, attributes: &[(&str, &str)]) -> TelemetryEvent {
    let attributes: Vec<(&str, String)> = attributes.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    TelemetryEvent::named(name, level, &attributes)
}
