//! `kasmina-lifecycle`: Kasmina's seed manager under commands its seeds cannot
//! all take, judged step by step against a model of the lifecycle.
//!
//! In the control loop Tamiyo's commands are well-formed and timely: it germinates
//! into a new or a DORMANT seed, never culls, and no seed leaks gradient, so the
//! lifecycle's refusals, its gates' failures and the road back from a cull
//! (CULLED → EMBARGOED → RESETTING → DORMANT) go unexercised (mutation testing let
//! `lifecycle::check` accept every move unnoticed). Here a stand-in for Tolaria
//! drives one `SeedManager`, with a drawn configuration, through drawn optimizer
//! steps. Before each step it may send a seed command — a germination (new, into a
//! drawn held seed, into a name Kasmina does not hold, without a blueprint, with a
//! non-finite parameter), a blend change, a cull of a held or an unknown seed, a
//! seed command without its operation, or a command sent before, delivered again
//! as an at-least-once bus would — attach
//! kernels (Urza's or the fallback, when kernels are not built in; now and then to a
//! seed not waiting for one) and report a backward pass's gradient overlap, clean or
//! leaky, for a drawn seed. `KASMINA_STRICT_ISOLATION` is drawn as an operator
//! might spell it and read as the real profile reads it; under strict isolation a
//! leaky report is counted and refused.
//!
//! Checked (`seed-lifecycle`): every command, attachment and isolation report is
//! accepted exactly when the [`model`] says it must be; after every step each seed's
//! stage, violations and health, the seeds waiting for a kernel and the active
//! count are the model's; and Kasmina's telemetry, drained every few steps, passes
//! the control loop's [`LifecycleWatch`] (legal moves only, stages as the events
//! left them, `kasmina.seeds.active` counting the forward-pass stages), and every
//! gate failure there is raised at the level Esper-Lite gave its reason.

mod model;

use std::time::Duration;

use esper_core::kasmina::isolation::STRICT_ISOLATION_ENV;
use esper_core::kasmina::prefetch::{Kernel, KernelSource};
use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{
    AdaptationCommand, CommandPayload, CommandSeedOperation, CommandType, SeedLifecycleStage as Stage, SeedOperation,
    TelemetryLevel, TelemetryPacket,
};
use esper_core::planted::Planted;
use esper_core::tolaria::device::{Device, ModelSpec, Synthetic};
use esper_sim::{Invariant, RngTree, SimScenario, Tally, Violation, World, WorldConfig};
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::drills::lifecycle::LifecycleWatch;
use model::{KernelKind, Model, Order};

trace_target!("kasmina_lifecycle");

const HOST: &str = "tolaria";
/// Optimizer steps per run.
const STEPS: u32 = 400;
/// Sim time per optimizer step.
const STEP: Duration = Duration::from_millis(5);
/// A seed id Kasmina never gives (it counts from `seed-1`).
const UNHELD: &str = "seed-0";
/// Blueprints the germinations name (Karn's).
const BLUEPRINTS: [&str; 3] = ["BP001", "BP002", "BP003"];

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct KasminaLifecycleScenario;

impl SimScenario for KasminaLifecycleScenario {
    fn name(&self) -> &'static str {
        "kasmina-lifecycle"
    }

    fn summary(&self) -> &'static str {
        "Kasmina's seeds under drawn commands (illegal, repeated, without a blueprint), kernels and gradient \
         leaks; a model of the lifecycle and its gates judges every answer and every step"
    }

    fn world_config(&self) -> WorldConfig {
        WorldConfig { duration: Duration::from_secs(30), ..WorldConfig::default() }
    }

    fn populate(&self, world: &mut World) {
        let (rng, tally, planted) = (world.rng().child("kasmina"), world.tally(), world.planted());
        world.client(HOST, async move {
            drive(&rng, &tally, planted).await?;
            Ok(())
        });
    }
}

/// Kasmina as the run configures it: short stages, so seeds cycle many times.
fn draw_config(rng: &RngTree) -> KasminaConfig {
    let mut draws = rng.stream("config");
    let mut config = KasminaConfig {
        training_steps: draws.random_range(1..=10),
        probation_steps: draws.random_range(4..=16),
        embargo_steps: draws.random_range(1..=8),
        max_seeds: draws.random_range(3..=8),
        builtin_kernels: draws.random_bool(0.3),
        ..KasminaConfig::default()
    };
    config.schedule.total_steps = draws.random_range(1..=10);
    config
}

/// `KASMINA_STRICT_ISOLATION` as an operator might spell it, and whether each
/// spelling asks for strict isolation (Esper's flag spellings, any case and
/// blanks; unset is off). The run reads its drawn one through
/// `KasminaConfig::with_lookup`, as the real profile reads the environment.
const STRICT_SETTINGS: [(Option<&str>, bool); 5] =
    [(None, false), (Some("0"), false), (Some(" 1 "), true), (Some("Yes"), true), (Some("off"), false)];

/// Runs the steps; tallies the commands refused and accepted, the culls by gate,
/// the resets and the fossilized seeds, so a run shows the unhappy paths were walked.
async fn drive(rng: &RngTree, tally: &Tally, planted: Planted) -> Result<(), Violation> {
    let (setting, strict) = STRICT_SETTINGS[rng.stream("isolation").random_range(0..STRICT_SETTINGS.len())];
    let lookup = |var: &str| setting.filter(|_| var == STRICT_ISOLATION_ENV).map(str::to_owned);
    let config = KasminaConfig { planted, ..draw_config(rng) }.with_lookup(lookup).map_err(|error| {
        Invariant::Scenario.violated(format!("{STRICT_ISOLATION_ENV}={setting:?} refused: {error}"))
    })?;
    let (mut kasmina, mut model) = (SeedManager::new(config), Model::new(config));
    model.strict = strict;
    let mut watch = LifecycleWatch::default();
    let device = Synthetic::new(ModelSpec::rc1(), &mut rng.stream("device"));
    let mut draws = rng.stream("steps");
    let mut sent: Vec<Order> = Vec::new();
    let mut until_drain = 1_u32;
    for step in 0..STEPS {
        if draws.random_bool(0.4) {
            let order = draw_order(&mut draws, &model, &sent);
            let expected = model.apply(&order);
            let accepted = kasmina.apply(&command(&order, step)).is_ok();
            judge(step, expected == accepted, || format!("{order:?} was {}", verdict(accepted)))?;
            sent.push(order);
        }
        if !config.builtin_kernels {
            attach(&mut draws, &mut kasmina, &mut model, step)?;
        }
        if draws.random_bool(0.3) {
            report_isolation(&device, &mut draws, &mut kasmina, &mut model, step)?;
        }
        kasmina.advance();
        model.advance();
        compare(step, &kasmina, &model)?;
        until_drain -= 1;
        if until_drain == 0 {
            let batch = kasmina.telemetry(u64::from(step));
            check_gate_failure_levels(step, &batch)?;
            watch.observe(&batch)?;
            until_drain = draws.random_range(1..=6);
        }
        tokio::time::sleep(STEP).await;
    }
    for (gate, stage) in [("g1", Stage::Training), ("g2", Stage::Blending), ("g4", Stage::Probationary)] {
        let culls = model.gate_culls.get(&stage).copied().unwrap_or_default();
        tally.add(&format!("kasmina-lifecycle.culled_at_{gate}"), culls);
    }
    // Every answer matched the model's, so its counts are Kasmina's.
    tally.add("kasmina-lifecycle.commands_accepted", model.counters.commands_applied);
    tally.add("kasmina-lifecycle.commands_refused", model.counters.commands_rejected);
    tally.add("kasmina-lifecycle.resets", model.resets);
    tally.add("kasmina-lifecycle.fossilized", model.fossilized);
    tracing::info!(target: TRACE_TARGET, ?config, seeds = model.seeds.len(), commands = sent.len(), "kasmina-lifecycle judged");
    Ok(())
}

/// A drawn seed command (see the module docs).
fn draw_order(draws: &mut impl Rng, model: &Model, sent: &[Order]) -> Order {
    let blueprint = (*BLUEPRINTS.choose(draws).unwrap_or(&BLUEPRINTS[0])).to_owned();
    let germinate = |target: String, blueprint: String, parameters: &[(&str, f32)]| Order::Germinate {
        target,
        blueprint,
        parameters: parameters.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect(),
    };
    match draws.random_range(0..11) {
        0 | 1 => germinate(String::new(), blueprint, &[]),
        2 => germinate(format!("graft-{}", draws.random_range(0..3)), blueprint, &[]),
        3 | 4 => germinate(held(draws, model), blueprint, &[]),
        5 => germinate(held(draws, model), blueprint, &[("alpha", 1.0)]),
        6 if draws.random_bool(0.5) => germinate(held(draws, model), String::new(), &[]),
        6 => germinate(String::new(), blueprint, &[("lr_scale", f32::NAN)]),
        7 if draws.random_bool(0.1) => Order::Bare { target: held(draws, model) },
        7 if draws.random_bool(0.2) => Order::Cull { target: UNHELD.to_owned() },
        7..=9 => Order::Cull { target: held(draws, model) },
        _ => sent.choose(draws).cloned().unwrap_or_else(|| Order::Cull { target: held(draws, model) }),
    }
}

/// A drawn seed of the model's (the empty id, for a fresh seed, when it holds none).
fn held(draws: &mut impl Rng, model: &Model) -> String {
    let ids: Vec<&String> = model.seeds.keys().collect();
    ids.choose(draws).map_or_else(String::new, |id| (*id).clone())
}

/// The command Tamiyo would send for `order`.
fn command(order: &Order, step: u32) -> AdaptationCommand {
    let (target, payload) = match order {
        Order::Germinate { target, blueprint, parameters } => {
            let operation = CommandSeedOperation {
                operation: SeedOperation::Germinate.into(),
                blueprint_id: blueprint.clone(),
                parameters: parameters.clone(),
            };
            (target, Some(operation))
        }
        Order::Cull { target } => {
            let operation =
                CommandSeedOperation { operation: SeedOperation::Cull.into(), ..CommandSeedOperation::default() };
            (target, Some(operation))
        }
        Order::Bare { target } => (target, None),
    };
    AdaptationCommand {
        version: 1,
        command_id: format!("cmd-{step}"),
        command_type: CommandType::Seed.into(),
        target_seed_id: target.clone(),
        payload: payload.map(CommandPayload::SeedOperation),
        ..AdaptationCommand::default()
    }
}

/// Attaches kernels to seeds waiting for one (each with probability ½, Urza's or,
/// one time in four, the fallback); one step in ten also tries a drawn held seed.
fn attach(draws: &mut impl Rng, kasmina: &mut SeedManager, model: &mut Model, step: u32) -> Result<(), Violation> {
    let mut targets: Vec<String> = model.awaiting().into_iter().filter(|_| draws.random_bool(0.5)).collect();
    if draws.random_bool(0.1) {
        targets.push(held(draws, model));
    }
    for target in targets {
        let fallback = draws.random_bool(0.25);
        let (kind, source) = if fallback {
            (KernelKind::Fallback, KernelSource::Fallback)
        } else {
            (KernelKind::Own, KernelSource::Fetched)
        };
        let expected = model.attach(&target, kind);
        let kernel = Kernel {
            blueprint_id: BLUEPRINTS[0].to_owned(),
            artifact_ref: format!("urza://{target}"),
            source,
            prewarm_ms: 0.0,
        };
        let accepted = kasmina.attach_kernel(&target, kernel).is_ok();
        judge(step, expected == accepted, || format!("a {kind:?} kernel for {target:?} was {}", verdict(accepted)))?;
    }
    Ok(())
}

/// Reports a backward pass of a drawn seed (or, now and then, one Kasmina does
/// not hold): disjoint gradients, or (one time in two) overlapping ones, for one
/// to three passes in a row, as a leaky graft leaks on every pass. Each pass's
/// overlap is measured by Kasmina or, as Tolaria's backward pass does, by `device`.
fn report_isolation(
    device: &dyn Device,
    draws: &mut impl Rng,
    kasmina: &mut SeedManager,
    model: &mut Model,
    step: u32,
) -> Result<(), Violation> {
    let training: Vec<&String> =
        model.seeds.iter().filter(|(_, s)| s.stage == Stage::Training).map(|(id, _)| id).collect();
    let target = match training.choose(draws) {
        // A seed that passed G1 clean and then leaks: G2 is its gate.
        Some(id) if draws.random_bool(0.3) => (*id).clone(),
        _ if draws.random_bool(0.9) => held(draws, model),
        _ => UNHELD.to_owned(),
    };
    let leaky = draws.random_bool(0.5);
    let host = [1.0_f32, 0.0, 0.5];
    let seed = if leaky { [0.0_f32, 2.0, 0.25] } else { [0.0_f32, 2.0, 0.0] };
    for _ in 0..if leaky { draws.random_range(1..=3) } else { 1 } {
        let expected = model.isolation(&target, leaky);
        let accepted = if draws.random_bool(0.5) {
            kasmina.check_isolation(&target, &host, &seed).is_ok()
        } else {
            kasmina.check_isolation_on(device, &target, &host, &seed).is_ok()
        };
        judge(step, expected == accepted, || {
            format!("a leaky={leaky} report for {target:?} was {}", verdict(accepted))
        })?;
    }
    Ok(())
}

/// Every seed's stage, violations and health, the seeds waiting for a kernel, the
/// active count and Kasmina's counters, against the model's.
fn compare(step: u32, kasmina: &SeedManager, model: &Model) -> Result<(), Violation> {
    let states = kasmina.states();
    let held: Vec<&str> = states.iter().map(|state| state.seed_id.as_str()).collect();
    let expected: Vec<&str> = model.seeds.keys().map(String::as_str).collect();
    judge(step, held == expected, || format!("Kasmina holds {held:?}, the lifecycle says {expected:?}"))?;
    for state in &states {
        let Some(seed) = model.seeds.get(&state.seed_id) else { continue };
        let id = &state.seed_id;
        let stage = Stage::try_from(state.stage).unwrap_or(Stage::Unknown);
        judge(step, stage == seed.stage, || format!("{id} is {stage}, the lifecycle says {}", seed.stage))?;
        let violations = state.metrics.get("isolation_violations").copied().unwrap_or(-1.0);
        #[allow(clippy::cast_precision_loss, reason = "a handful of violations")]
        let counted = seed.violations as f32;
        judge(step, violations == counted, || format!("{id} shows {violations} violations, not {counted}"))?;
        let health = kasmina.health(id);
        judge(step, health == Some(seed.health()), || format!("{id} is {health:?}, not {:?}", seed.health()))?;
    }
    let awaiting: Vec<String> = kasmina.awaiting_kernels().into_iter().map(|(id, _)| id).collect();
    judge(step, awaiting == model.awaiting(), || format!("{awaiting:?} await kernels, not {:?}", model.awaiting()))?;
    let (active, expected_active) = (kasmina.active(), model.active());
    judge(step, active == expected_active, || format!("{active} seeds active, the stages say {expected_active}"))?;
    let counters = kasmina.counters();
    judge(step, counters == model.counters, || {
        format!("Kasmina counted {counters:?}, the lifecycle {:?}", model.counters)
    })
}

/// Esper-Lite raised a gate failure CRITICAL when the fallback kernel was in play
/// or the stage did not match, WARNING otherwise: each `gate_failure` event of
/// `batch` must carry the level its reason calls for.
fn check_gate_failure_levels(step: u32, batch: &[TelemetryPacket]) -> Result<(), Violation> {
    let failures = batch.iter().flat_map(|packet| &packet.events).filter(|event| event.description == "gate_failure");
    for event in failures {
        let reason = event.attributes.get("reason").map_or("", String::as_str);
        let critical = reason.starts_with("fallback_kernel") || reason == "stage_mismatch";
        let expected = if critical { TelemetryLevel::Critical } else { TelemetryLevel::Warning };
        let level = TelemetryLevel::try_from(event.level).unwrap_or(TelemetryLevel::Unspecified);
        judge(step, level == expected, || {
            format!("a gate failure for {reason:?} was raised at {level:?}, not {expected:?}")
        })?;
    }
    Ok(())
}

fn verdict(accepted: bool) -> &'static str {
    if accepted { "accepted against the lifecycle" } else { "refused, which the lifecycle allows" }
}

fn judge(step: u32, holds: bool, detail: impl FnOnce() -> String) -> Result<(), Violation> {
    if holds { Ok(()) } else { Err(Invariant::SeedLifecycle.violated(format!("step {step}: {}", detail()))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn germinated() -> (SeedManager, Model) {
        let config = KasminaConfig::default();
        let (mut kasmina, mut model) = (SeedManager::new(config), Model::new(config));
        let order = Order::Germinate { target: String::new(), blueprint: "BP001".to_owned(), parameters: [].into() };
        assert!(model.apply(&order));
        assert!(kasmina.apply(&command(&order, 0)).is_ok());
        compare(0, &kasmina, &model).expect("in step");
        (kasmina, model)
    }

    #[test]
    fn a_kasmina_a_step_ahead_of_the_lifecycle_breaks_seed_lifecycle() {
        let (mut kasmina, model) = germinated();
        kasmina.advance();
        let violation = compare(1, &kasmina, &model).expect_err("TRAINING against GERMINATED");
        assert_eq!(violation.invariant, Invariant::SeedLifecycle);
        assert!(violation.detail.starts_with("step 1: seed-1 is"), "{}", violation.detail);
    }

    #[test]
    fn a_leak_kasmina_did_not_count_breaks_seed_lifecycle() {
        let (kasmina, mut model) = germinated();
        assert!(model.isolation("seed-1", true));
        let violation = compare(0, &kasmina, &model).expect_err("violations differ");
        assert!(violation.detail.contains("shows 0 violations, not 1"), "{}", violation.detail);
    }
}
