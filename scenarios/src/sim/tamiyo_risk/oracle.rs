//! The `risk-gates` oracle: what Tamiyo's risk engine should have ruled, derived
//! again from what each decision was shown.
//!
//! The oracle does not call the engine. It walks Esper-Lite's check order itself
//! (policy risk, conservative mode, timeouts, blueprint risk, loss, latency,
//! isolation and device), reading the same thresholds (`RiskConfig`, the one the
//! scenario gives Tamiyo), and keeps its own conservative-mode state. Its inputs
//! are the packet the driver sent, the command that came back, the lookups
//! Tamiyo's metadata source received while deciding, and the figures Tamiyo
//! published for the step (the loss delta and its own latency, which the engine
//! reads but does not compute). Its verdict is compared with the command (the
//! veto and its reason), the step's events (every warning, veto, timeout and
//! mode change, as a multiset of names) and the step's metrics (the proposed
//! blueprint's risk, conservative mode after the decision).

use std::collections::BTreeMap;
use std::time::Duration;

use esper_core::leyline::{AdaptationCommand, CommandType, SystemStatePacket, TelemetryPacket};
use esper_core::tamiyo::risk::keys;
use esper_core::tamiyo::{BlueprintMetadata, RiskConfig};
use esper_sim::{Invariant, Violation};

/// Annotation naming what a vetoed command proposed.
const PROPOSED: &str = "proposed_command";
/// Annotation naming why a command is a PAUSE.
const RISK_REASON: &str = esper_core::tamiyo::outcome::RISK_REASON;

/// What the scenario saw of one decision of one Tamiyo.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The packet Tolaria's side sent.
    pub packet: SystemStatePacket,
    /// The command that came back.
    pub command: AdaptationCommand,
    /// The lookups Tamiyo's metadata source received while deciding: the
    /// blueprint and how long the source was set to take.
    pub fetches: Vec<(String, Duration)>,
    /// The telemetry packets Tamiyo published for the step (all its parts).
    pub telemetry: Vec<TelemetryPacket>,
}

/// Why conservative mode is on, as the oracle tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conservative {
    Off,
    /// Set by the operator (`TAMIYO_CONSERVATIVE_MODE`): held for the whole run.
    Operator,
    /// Entered on an evaluation over the step budget; this many within budget since.
    Recovering(u32),
}

/// The proposed blueprint's lookup, as the metadata source's log shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lookup<'a> {
    /// No germination proposed, or conservative mode skipped the lookup.
    NotAsked,
    Found(&'a BlueprintMetadata),
    Unknown,
    /// The source was asked but was set slower than the metadata timeout.
    TimedOut,
    /// A germination was proposed but the source was never asked: the metadata
    /// breaker refused the lookup (the scenario runs Tamiyo without a cache).
    BreakerOpen,
}

/// What the oracle expects of one decision.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    reason: Option<&'static str>,
    events: Vec<&'static str>,
    blueprint_risk: f32,
    conservative_after: bool,
}

/// The oracle for one Tamiyo, fed its decisions in order.
#[derive(Debug)]
pub struct RiskOracle<'a> {
    config: &'a RiskConfig,
    metadata_timeout: Duration,
    step_timeout: Duration,
    catalog: &'a BTreeMap<String, BlueprintMetadata>,
    conservative: Conservative,
}

impl<'a> RiskOracle<'a> {
    /// An oracle for a Tamiyo with thresholds `config`, lookups bounded by
    /// `metadata_timeout` and decisions by `step_timeout`, asking `catalog`,
    /// started in conservative mode if `conservative`.
    pub fn new(
        config: &'a RiskConfig,
        (metadata_timeout, step_timeout): (Duration, Duration),
        catalog: &'a BTreeMap<String, BlueprintMetadata>,
        conservative: bool,
    ) -> Self {
        let conservative = if conservative { Conservative::Operator } else { Conservative::Off };
        Self { config, metadata_timeout, step_timeout, catalog, conservative }
    }

    /// Judges the next decision of the Tamiyo called `host`.
    pub fn judge(&mut self, host: &str, decision: &Decision) -> Result<(), Violation> {
        let step = decision.packet.global_step;
        let fail = |detail: String| Invariant::RiskGates.violated(format!("{host}, step {step}: {detail}"));
        let figures = Figures::of(&decision.telemetry).map_err(fail)?;
        let lookup = self.lookup(decision).map_err(fail)?;
        let expected = self.expect(decision, &figures, lookup);
        compare(&expected, &decision.command, &figures).map_err(fail)
    }

    /// What the metadata source's log says about the proposed blueprint.
    fn lookup(&self, decision: &Decision) -> Result<Lookup<'a>, String> {
        let germination = proposed_germination(&decision.command);
        let asks = germination && self.conservative == Conservative::Off;
        match (asks, decision.fetches.as_slice()) {
            (false, []) => Ok(Lookup::NotAsked),
            (false, [(blueprint, _), ..]) => Err(format!(
                "Tamiyo looked up {blueprint} though it {}",
                if germination { "is in conservative mode" } else { "proposed no germination" }
            )),
            (true, []) => Ok(Lookup::BreakerOpen),
            (true, [(_, delay)]) if *delay >= self.metadata_timeout => Ok(Lookup::TimedOut),
            (true, [(blueprint, _)]) => Ok(self.catalog.get(blueprint).map_or(Lookup::Unknown, Lookup::Found)),
            (true, more) => Err(format!("one decision looked up {} blueprints", more.len())),
        }
    }

    /// The engine's ruling, re-derived (see the module docs); moves the oracle's
    /// conservative mode as the decision should have.
    fn expect(&mut self, decision: &Decision, figures: &Figures, lookup: Lookup<'_>) -> Expected {
        let (config, packet) = (self.config, &decision.packet);
        let germination = proposed_germination(&decision.command);
        let over_budget = figures.latency_ms > self.step_timeout.as_secs_f64() * 1_000.0;
        let metric = |key: &str| packet.training_metrics.get(key).copied().unwrap_or(0.0);
        let mut events = Vec::new();
        let reason = 'gates: {
            let risk = worst_seed_risk(packet);
            if risk >= config.policy_risk_pause {
                break 'gates Some("policy_risk");
            }
            if germination && risk >= config.policy_risk_warn_seed {
                events.push("policy_risk_elevated");
            }
            if self.conservative != Conservative::Off {
                break 'gates Some("conservative_mode");
            }
            if over_budget {
                break 'gates Some("timeout_inference");
            }
            let (quarantined, blueprint_risk) = match lookup {
                Lookup::TimedOut | Lookup::BreakerOpen => break 'gates Some("timeout_urza"),
                Lookup::Found(metadata) => (metadata.quarantine_only, metadata.risk),
                Lookup::Unknown => (true, 1.0),
                Lookup::NotAsked => (false, 0.0),
            };
            if quarantined || blueprint_risk >= config.blueprint_risk_pause {
                events.push("bp_quarantine");
                break 'gates Some("bp_quarantine");
            }
            if blueprint_risk >= config.blueprint_risk_warn {
                events.push("bp_risk_elevated");
            }
            if figures.loss_delta > config.loss_spike_pause {
                break 'gates Some("loss_spike");
            }
            if figures.loss_delta > config.loss_spike_warn {
                events.push("loss_warning");
            }
            if metric(keys::HOOK_LATENCY_MS) > config.hook_budget_ms {
                break 'gates Some("hook_budget");
            }
            if metric(keys::STEP_LATENCY_MS) > config.step_latency_warn_ms {
                events.push("step_latency_high");
            }
            let kasmina_ms = [keys::KASMINA_APPLY_MS, keys::KASMINA_FINALIZE_MS].map(metric);
            if kasmina_ms.iter().any(|ms| *ms > config.kasmina_latency_warn_ms) {
                events.push("kasmina_latency_high");
            }
            if isolation_violated(packet) {
                break 'gates Some("isolation_violation");
            }
            let utilization = packet.hardware_context.as_ref().map_or(0.0, |hw| hw.utilization_percent);
            (utilization >= config.device_utilization_pause_percent).then_some("device_pressure")
        };
        match lookup {
            Lookup::TimedOut => events.push("timeout_urza"),
            Lookup::BreakerOpen => events.push("metadata_breaker_open"),
            Lookup::NotAsked | Lookup::Found(_) | Lookup::Unknown => {}
        }
        self.conservative = match (self.conservative, over_budget) {
            (Conservative::Operator, _) => Conservative::Operator,
            (before, true) => {
                events.push("timeout_inference");
                if before == Conservative::Off {
                    events.push("conservative_mode_entered");
                }
                Conservative::Recovering(0)
            }
            (Conservative::Recovering(healthy), false) if healthy + 1 >= config.recovery_evaluations => {
                events.push("conservative_mode_exited");
                Conservative::Off
            }
            (Conservative::Recovering(healthy), false) => Conservative::Recovering(healthy + 1),
            (Conservative::Off, false) => Conservative::Off,
        };
        if reason.is_some() {
            events.push("pause_triggered");
        }
        events.sort_unstable();
        let blueprint_risk = match lookup {
            Lookup::NotAsked => 0.0,
            Lookup::Found(metadata) => metadata.risk,
            Lookup::Unknown | Lookup::TimedOut | Lookup::BreakerOpen => 1.0,
        };
        Expected { reason, events, blueprint_risk, conservative_after: self.conservative != Conservative::Off }
    }
}

/// Whether the policy proposed a germination: the command is one, or a veto
/// names it as what was proposed.
fn proposed_germination(command: &AdaptationCommand) -> bool {
    command.command_type == i32::from(CommandType::Seed)
        || command.annotations.get(PROPOSED).map(String::as_str) == Some(CommandType::Seed.as_str_name())
}

/// The policy's own risk estimate as Esper-Lite defines it: the riskiest seed in
/// the packet, a non-finite score counting as the worst, within [0, 1].
fn worst_seed_risk(packet: &SystemStatePacket) -> f32 {
    let scores = packet.seed_states.iter().map(|seed| if seed.risk_score.is_finite() { seed.risk_score } else { 1.0 });
    scores.fold(0.0_f32, f32::max).clamp(0.0, 1.0)
}

/// Any gradient-isolation violation reported, for the whole model or one seed.
fn isolation_violated(packet: &SystemStatePacket) -> bool {
    let global = packet.training_metrics.get(keys::ISOLATION_VIOLATIONS).copied().unwrap_or(0.0);
    let per_seed = packet.seed_states.iter().filter_map(|seed| seed.metrics.get(keys::SEED_ISOLATION_VIOLATIONS));
    global > 0.0 || per_seed.copied().any(|violations| violations > 0.0)
}

/// What Tamiyo published for one step.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    loss_delta: f32,
    latency_ms: f64,
    blueprint_risk: f64,
    conservative: f64,
    /// Event names, sorted.
    events: Vec<String>,
}

impl Figures {
    fn of(telemetry: &[TelemetryPacket]) -> Result<Self, String> {
        let metrics: BTreeMap<&str, f64> =
            telemetry.iter().flat_map(|packet| &packet.metrics).map(|m| (m.name.as_str(), m.value)).collect();
        let metric =
            |name: &str| metrics.get(name).copied().ok_or_else(|| format!("Tamiyo published no `{name}` for the step"));
        let mut events: Vec<String> =
            telemetry.iter().flat_map(|packet| &packet.events).map(|e| e.description.clone()).collect();
        events.sort_unstable();
        Ok(Self {
            loss_delta: metric("tamiyo.loss_delta")? as f32,
            latency_ms: metric("tamiyo.inference.latency_ms")?,
            blueprint_risk: metric("tamiyo.blueprint.risk")?,
            conservative: metric("tamiyo.conservative_mode")?,
            events,
        })
    }
}

/// Where the command and the published figures differ from `expected`.
fn compare(expected: &Expected, command: &AdaptationCommand, figures: &Figures) -> Result<(), String> {
    let paused = command.command_type == i32::from(CommandType::Pause);
    let reason = command.annotations.get(RISK_REASON).map(String::as_str);
    let vetoed = command.annotations.contains_key(PROPOSED);
    match expected.reason {
        Some(want) if !(paused && vetoed && reason == Some(want)) => {
            return Err(format!("expected a veto for {want}, got {} with reason {reason:?}", kind(command)));
        }
        None if vetoed || (reason.is_some() && reason != Some("policy")) => {
            return Err(format!("expected no veto, got {} with reason {reason:?}", kind(command)));
        }
        _ => {}
    }
    if figures.events != expected.events {
        return Err(format!("expected the events {:?}, Tamiyo reported {:?}", expected.events, figures.events));
    }
    if figures.blueprint_risk != f64::from(expected.blueprint_risk) {
        return Err(format!(
            "expected tamiyo.blueprint.risk {}, Tamiyo reported {}",
            expected.blueprint_risk, figures.blueprint_risk
        ));
    }
    if (figures.conservative == 1.0) != expected.conservative_after {
        return Err(format!(
            "expected conservative mode {} after the decision, Tamiyo reported {}",
            expected.conservative_after, figures.conservative
        ));
    }
    Ok(())
}

fn kind(command: &AdaptationCommand) -> &'static str {
    CommandType::try_from(command.command_type).unwrap_or(CommandType::Unknown).as_str_name()
}

#[cfg(test)]
mod tests {
    use esper_core::leyline::{BlueprintTier, SeedState};
    use esper_core::leyline::{MetricPoint, TelemetryEvent, TelemetryLevel};

    use super::*;

    const TIMEOUTS: (Duration, Duration) = (Duration::from_millis(25), Duration::from_millis(2_000));

    fn catalog() -> BTreeMap<String, BlueprintMetadata> {
        let entry = |id: &str, risk: f32, quarantine_only: bool| BlueprintMetadata {
            blueprint_id: id.to_owned(),
            name: id.to_owned(),
            tier: BlueprintTier::Safe,
            risk,
            quarantine_only,
            approval_required: false,
        };
        [entry("calm", 0.1, false), entry("warned", 0.5, false), entry("caged", 0.1, true)]
            .into_iter()
            .map(|m| (m.blueprint_id.clone(), m))
            .collect()
    }

    fn germination() -> AdaptationCommand {
        AdaptationCommand { command_type: CommandType::Seed.into(), ..AdaptationCommand::default() }
    }

    fn policy_pause() -> AdaptationCommand {
        let annotations = BTreeMap::from([(RISK_REASON.to_owned(), "policy".to_owned())]);
        AdaptationCommand { command_type: CommandType::Pause.into(), annotations, ..AdaptationCommand::default() }
    }

    fn vetoed(proposed: CommandType, reason: &str) -> AdaptationCommand {
        let annotations = BTreeMap::from([
            (PROPOSED.to_owned(), proposed.as_str_name().to_owned()),
            (RISK_REASON.to_owned(), reason.to_owned()),
        ]);
        AdaptationCommand { command_type: CommandType::Pause.into(), annotations, ..AdaptationCommand::default() }
    }

    /// A decision on a packet with `metrics` and `seed_risks`, published with
    /// `loss_delta`, the blueprint risk, conservative mode and `events`.
    fn decision(
        (metrics, seed_risks): (&[(&str, f32)], &[f32]),
        command: AdaptationCommand,
        fetches: &[(&str, u64)],
        (loss_delta, blueprint_risk, conservative): (f32, f32, bool),
        events: &[&str],
    ) -> Decision {
        let packet = SystemStatePacket {
            global_step: 7,
            training_metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            seed_states: seed_risks
                .iter()
                .map(|&risk_score| SeedState { risk_score, ..SeedState::default() })
                .collect(),
            ..SystemStatePacket::default()
        };
        let metric = |name: &str, value: f64| MetricPoint::new(name, value, "");
        let published = TelemetryPacket {
            packet_id: "tamiyo-s7".to_owned(),
            metrics: vec![
                metric("tamiyo.loss_delta", f64::from(loss_delta)),
                metric("tamiyo.inference.latency_ms", 3.0),
                metric("tamiyo.blueprint.risk", f64::from(blueprint_risk)),
                metric("tamiyo.conservative_mode", f64::from(u8::from(conservative))),
            ],
            events: events.iter().map(|name| TelemetryEvent::named(name, TelemetryLevel::Warning, &[])).collect(),
            ..TelemetryPacket::default()
        };
        let fetches = fetches.iter().map(|(id, ms)| ((*id).to_owned(), Duration::from_millis(*ms))).collect();
        Decision { packet, command, fetches, telemetry: vec![published] }
    }

    fn judge(decision: &Decision, conservative: bool) -> Result<(), Violation> {
        let (config, catalog) = (RiskConfig::default(), catalog());
        RiskOracle::new(&config, TIMEOUTS, &catalog, conservative).judge("tamiyo", decision)
    }

    /// Decisions the engine got right, one per kind of ruling.
    #[test]
    fn rulings_the_engine_gets_right_pass() {
        let right = [
            decision((&[], &[0.1]), germination(), &[("calm", 0)], (0.0, 0.1, false), &[]),
            decision((&[], &[]), policy_pause(), &[], (0.0, 0.0, false), &[]),
            decision(
                (&[], &[0.9]),
                germination(),
                &[("warned", 5)],
                (0.08, 0.5, false),
                &["bp_risk_elevated", "loss_warning", "policy_risk_elevated"],
            ),
            decision(
                (&[("hook_latency_ms", 50.0)], &[0.98]),
                vetoed(CommandType::Pause, "policy_risk"),
                &[],
                (0.0, 0.0, false),
                &["pause_triggered"],
            ),
            decision(
                (&[], &[]),
                vetoed(CommandType::Seed, "timeout_urza"),
                &[("calm", 40)],
                (0.0, 1.0, false),
                &["pause_triggered", "timeout_urza"],
            ),
            decision(
                (&[], &[]),
                vetoed(CommandType::Seed, "timeout_urza"),
                &[],
                (0.0, 1.0, false),
                &["metadata_breaker_open", "pause_triggered"],
            ),
            decision(
                (&[], &[]),
                vetoed(CommandType::Seed, "bp_quarantine"),
                &[("ghost", 0)],
                (0.0, 1.0, false),
                &["bp_quarantine", "pause_triggered"],
            ),
            decision(
                (&[("hook_latency_ms", 51.0)], &[]),
                vetoed(CommandType::Pause, "loss_spike"),
                &[],
                (0.2, 0.0, false),
                &["pause_triggered"],
            ),
        ];
        for (n, decision) in right.iter().enumerate() {
            assert_eq!(judge(decision, false), Ok(()), "decision {n}");
        }
        let careful = decision(
            (&[], &[]),
            vetoed(CommandType::Seed, "conservative_mode"),
            &[],
            (0.0, 0.0, true),
            &["pause_triggered"],
        );
        assert_eq!(judge(&careful, true), Ok(()));
    }

    /// Plausible engine bugs, each as the decision it would produce.
    #[test]
    fn a_misjudged_decision_breaks_risk_gates() {
        let wrong = [
            (
                "a hook at exactly its budget vetoed (>= for >)",
                decision(
                    (&[("hook_latency_ms", 50.0)], &[]),
                    vetoed(CommandType::Seed, "hook_budget"),
                    &[("calm", 0)],
                    (0.0, 0.1, false),
                    &["pause_triggered"],
                ),
            ),
            (
                "a quarantine-only blueprint let through",
                decision((&[], &[]), germination(), &[("caged", 0)], (0.0, 0.1, false), &[]),
            ),
            (
                "a policy-risk warning on a pause",
                decision((&[], &[0.9]), policy_pause(), &[], (0.0, 0.0, false), &["policy_risk_elevated"]),
            ),
            (
                "a metadata timeout let through",
                decision((&[], &[]), germination(), &[("calm", 40)], (0.0, 1.0, false), &["timeout_urza"]),
            ),
            (
                "a refused lookup without its event",
                decision(
                    (&[], &[]),
                    vetoed(CommandType::Seed, "timeout_urza"),
                    &[],
                    (0.0, 1.0, false),
                    &["pause_triggered"],
                ),
            ),
            (
                "a later gate's reason (isolation before the loss spike)",
                decision(
                    (&[("kasmina.isolation.violations", 1.0)], &[]),
                    vetoed(CommandType::Pause, "isolation_violation"),
                    &[],
                    (0.2, 0.0, false),
                    &["pause_triggered"],
                ),
            ),
            (
                "the blueprint's risk misreported",
                decision((&[], &[]), germination(), &[("calm", 0)], (0.0, 0.0, false), &[]),
            ),
            (
                "a veto without its pause event",
                decision((&[], &[0.98]), vetoed(CommandType::Pause, "policy_risk"), &[], (0.0, 0.0, false), &[]),
            ),
        ];
        for (case, decision) in wrong {
            let violation = judge(&decision, false).expect_err(case);
            assert_eq!(violation.invariant, Invariant::RiskGates, "{case}: {violation}");
        }
        let looks_up = decision(
            (&[], &[]),
            vetoed(CommandType::Seed, "conservative_mode"),
            &[("calm", 0)],
            (0.0, 0.1, true),
            &["pause_triggered"],
        );
        assert!(judge(&looks_up, true).is_err(), "a conservative Tamiyo looked a blueprint up");
    }
}
