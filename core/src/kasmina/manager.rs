//! The seed manager: applies Tamiyo's seed commands and walks each seed through its
//! lifecycle, one checked, gated transition at a time.
//!
//! Progress is driven by Tolaria's `finalize_step`: a germinated seed starts training
//! once it has a kernel (G1), trains for `training_steps`, blends in over the alpha
//! schedule (G2), shadows for one step (G3), and is fossilized after
//! `probation_steps` of probation (G4). A cull — commanded, or a failed gate — sends
//! a seed through CULLED → EMBARGOED; after `embargo_steps` it resets to DORMANT
//! (G5). Every transition goes through [`lifecycle::check`] and every gate evaluation
//! is a `gate_event`; a command that would need an illegal transition is refused
//! with a typed error, an event and a counter — never a silent no-op.
//!
//! Blend changes: Tamiyo's seed command carries its blend in `seed_operation.parameters`
//! (`alpha`, `blending_method_index`, `blending_schedule_start/end`; see
//! [`blending`](super::blending)). A GERMINATE that targets a seed already past DORMANT
//! and carries those parameters is a blend change, legal for a BLENDING seed only: it
//! re-plans the seed's alpha from where it is to the commanded target. A seed held
//! below alpha 1 stays BLENDING (G3 wants a complete blend) until a later change
//! raises it. In any other stage the change is refused ([`KasminaError::BlendRefused`]).
//!
//! Gradient isolation ([`SeedManager::check_isolation`]) feeds the gates: a violation
//! is counted, degrades the seed's health and blocks G1/G4; with
//! `KASMINA_STRICT_ISOLATION` it is an error at once.

use std::collections::BTreeMap;

use super::blending::{self, AlphaSchedule, BadBlendParameter, BlendChange, BlendPlan};
use super::gates::{self, GateInputs, GateVerdict};
use super::isolation::{self, OVERLAP_TOLERANCE};
use super::lifecycle::{self, IllegalTransition};
use super::prefetch::{Kernel, KernelSource};
use super::telemetry;
use crate::karn::Catalog;
use crate::leyline::counters::leyline_counters;
use crate::leyline::{
    AdaptationCommand, CommandPayload, CommandType, HealthStatus, MetricPoint, SeedLifecycleStage as Stage,
    SeedOperation, SeedState, TelemetryEvent, TelemetryLevel, TelemetryPacket,
};
use crate::planted::{Planted, PlantedBug};
use crate::tolaria::device::{BlendMode, Device, Gradients, GraftStage, SeedGraft};
use crate::tolaria::ports::{KasminaPort, PortError};

/// Pacing of the lifecycle, in optimizer steps, and the isolation policy.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KasminaConfig {
    pub training_steps: u32,
    pub probation_steps: u32,
    pub embargo_steps: u32,
    /// Seeds held at once (any stage but TERMINATED).
    pub max_seeds: usize,
    pub schedule: AlphaSchedule,
    /// A germinated seed gets Kasmina's built-in kernel at once (true, the
    /// default when no Urza is deployed) or waits for [`SeedManager::attach_kernel`].
    pub builtin_kernels: bool,
    /// `KASMINA_STRICT_ISOLATION`: an isolation violation is an error.
    pub strict_isolation: bool,
    /// Blend grafted seeds RESIDUAL (`host + α·seed`), which adds the seed's
    /// capacity to the host's, instead of Esper-Lite's default CONVEX, which
    /// replaces the host's output with the seed's at alpha 1.
    #[serde(default)]
    pub residual_blend: bool,
    /// The run's planted bug (tests only; see [`crate::planted`]).
    #[serde(skip)]
    pub planted: Planted,
}

impl Default for KasminaConfig {
    fn default() -> Self {
        Self {
            training_steps: 8,
            probation_steps: 8,
            embargo_steps: 30,
            max_seeds: 16,
            schedule: AlphaSchedule::default(),
            builtin_kernels: true,
            strict_isolation: false,
            residual_blend: false,
            planted: Planted::NONE,
        }
    }
}

impl KasminaConfig {
    /// This config with `KASMINA_STRICT_ISOLATION` from `lookup` (the process
    /// environment in the real profile; core itself never reads the environment).
    pub fn with_lookup(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::env_config::EnvConfigError> {
        Ok(Self { strict_isolation: isolation::strict_from(lookup)?, ..self })
    }
}

/// Why a command or a report was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KasminaError {
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("no seed `{0}`")]
    UnknownSeed(String),
    #[error("seed operation {0} is not supported by this Kasmina")]
    Unsupported(SeedOperation),
    #[error("command {command_id} is a seed command without a seed operation")]
    MissingOperation { command_id: String },
    #[error("germination refused by gate G0: {0}")]
    GateG0(&'static str),
    #[error("already holding {0} seeds")]
    Full(usize),
    #[error("unsigned command refused: Kasmina takes signed commands only")]
    Unsigned,
    #[error("command frame refused: {0}")]
    BadCommand(String),
    #[error("seed `{seed}` is {stage}, not waiting for a kernel")]
    NotAwaitingKernel { seed: String, stage: Stage },
    #[error("blend change refused: seed `{seed}` is {stage}, not SEED_STAGE_BLENDING")]
    BlendRefused { seed: String, stage: Stage },
    #[error(transparent)]
    BadBlend(#[from] BadBlendParameter),
    #[error("isolation check failed on the device: {0}")]
    Device(String),
    #[error("gradient isolation violated by seed `{seed}`: host/seed gradient overlap {overlap:e} (strict isolation)")]
    IsolationViolation { seed: String, overlap: f64 },
}

/// One seed as Kasmina tracks it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Seed {
    stage: Stage,
    blueprint_id: String,
    /// Steps spent in the current stage.
    steps_in_stage: u32,
    alpha: f32,
    /// A commanded blend; without one, BLENDING follows the configured schedule.
    blend: Option<BlendPlan>,
    kernel: Option<Kernel>,
    violations: u32,
    health: HealthStatus,
}

impl Seed {
    fn gate_inputs(&self) -> GateInputs {
        GateInputs {
            kernel_attached: self.kernel.is_some(),
            fallback_kernel: self.kernel.as_ref().is_some_and(|k| k.source == KernelSource::Fallback),
            violations: self.violations,
            health: self.health,
            alpha: self.alpha,
        }
    }
}

leyline_counters! {
    /// Counters, named as Kasmina's metrics.
    #[derive(serde::Serialize)]
    pub struct KasminaCounters {
        commands_applied => "kasmina.commands.applied",
        commands_rejected => "kasmina.commands.rejected",
        transitions => "kasmina.seed.transitions",
        gates_passed => "kasmina.gate.passed",
        gate_failures => "kasmina.gate.failures",
        /// `kasmina.isolation.violations`, which `kasmina_isolation_violation` watches.
        isolation_violations => "kasmina.isolation.violations",
        /// Events discarded because nobody drained them in time.
        events_dropped => "kasmina.events.dropped",
    }
}

/// Events held for [`SeedManager::take_events`]; the oldest go first beyond this.
const MAX_PENDING_EVENTS: usize = 256;
/// Violations after which a seed is unhealthy (Esper-Lite's isolation breaker: 3).
const UNHEALTHY_AFTER_VIOLATIONS: u32 = 3;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct SeedManager {
    config: KasminaConfig,
    /// Karn's blueprints: a kernel's module shape is its blueprint's.
    catalog: Catalog,
    seeds: BTreeMap<String, Seed>,
    next_seed: u64,
    counters: KasminaCounters,
    events: Vec<TelemetryEvent>,
}

impl SeedManager {
    /// A manager with no seeds.
    pub fn new(config: KasminaConfig) -> Self {
        Self {
            config,
            catalog: Catalog::default_catalog(),
            seeds: BTreeMap::new(),
            next_seed: 0,
            counters: KasminaCounters::default(),
            events: Vec::new(),
        }
    }

    /// Applies one command; seed commands change seeds, others are acknowledged.
    pub fn apply(&mut self, command: &AdaptationCommand) -> Result<(), KasminaError> {
        let result = match (CommandType::try_from(command.command_type), &command.payload) {
            (Ok(CommandType::Seed), Some(CommandPayload::SeedOperation(op))) => {
                let operation = SeedOperation::try_from(op.operation).unwrap_or(SeedOperation::Unknown);
                self.seed_operation(operation, &command.target_seed_id, &op.blueprint_id, &op.parameters)
            }
            (Ok(CommandType::Seed), _) => {
                Err(KasminaError::MissingOperation { command_id: command.command_id.clone() })
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                self.counters.commands_applied += 1;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(command_id = %command.command_id, %error, "kasmina.command_rejected");
                Err(self.refuse_command(error))
            }
        }
    }

    /// Counts a refused command and records its `command_rejected` event.
    pub(super) fn refuse_command(&mut self, error: KasminaError) -> KasminaError {
        self.counters.commands_rejected += 1;
        self.event("command_rejected", TelemetryLevel::Warning, &[("error", error.to_string())]);
        error
    }

    fn seed_operation(
        &mut self,
        operation: SeedOperation,
        target: &str,
        blueprint_id: &str,
        parameters: &BTreeMap<String, f32>,
    ) -> Result<(), KasminaError> {
        match operation {
            SeedOperation::Germinate
                if blending::is_blend_change(parameters)
                    && self.seeds.get(target).is_some_and(|seed| seed.stage != Stage::Dormant) =>
            {
                self.change_blend(target, parameters)
            }
            SeedOperation::Germinate => self.germinate(target, blueprint_id, parameters),
            SeedOperation::Cull => {
                let stage =
                    self.seeds.get(target).map(|s| s.stage).ok_or_else(|| KasminaError::UnknownSeed(target.into()))?;
                lifecycle::check(stage, Stage::Culled)?;
                self.cull(target)
            }
            other => Err(KasminaError::Unsupported(other)),
        }
    }

    fn germinate(
        &mut self,
        target: &str,
        blueprint_id: &str,
        parameters: &BTreeMap<String, f32>,
    ) -> Result<(), KasminaError> {
        let gate = if blueprint_id.is_empty() {
            Some("missing blueprint id")
        } else if parameters.values().any(|v| !v.is_finite()) {
            Some("non-finite parameter")
        } else {
            None
        };
        if let Some(reason) = gate {
            self.counters.gate_failures += 1;
            self.event("gate_failure", TelemetryLevel::Warning, &[("gate", "G0".into()), ("reason", reason.into())]);
            return Err(KasminaError::GateG0(reason));
        }
        let id = if target.is_empty() { self.fresh_id() } else { target.to_owned() };
        if let Some(seed) = self.seeds.get(&id) {
            lifecycle::check(seed.stage, Stage::Germinated)?;
        } else {
            if self.seeds.len() >= self.config.max_seeds {
                return Err(KasminaError::Full(self.seeds.len()));
            }
            let seed = Seed {
                stage: Stage::Unknown,
                blueprint_id: String::new(),
                steps_in_stage: 0,
                alpha: 0.0,
                blend: None,
                kernel: None,
                violations: 0,
                health: HealthStatus::Healthy,
            };
            self.seeds.insert(id.clone(), seed);
            self.transition(&id, Stage::Dormant)?;
        }
        self.event(
            "gate_event",
            TelemetryLevel::Info,
            &[
                ("seed", id.clone()),
                ("gate", "G0".into()),
                ("passed", "true".into()),
                ("condition", "blueprint,finite_parameters".into()),
            ],
        );
        self.counters.gates_passed += 1;
        self.transition(&id, Stage::Germinated)?;
        let builtin = self.config.builtin_kernels;
        if let Some(seed) = self.seeds.get_mut(&id) {
            seed.blueprint_id = blueprint_id.to_owned();
            if builtin {
                let artifact_ref = format!("builtin://{blueprint_id}");
                let kernel = Kernel {
                    blueprint_id: blueprint_id.to_owned(),
                    artifact_ref,
                    source: KernelSource::Builtin,
                    prewarm_ms: 0.0,
                };
                seed.kernel = Some(kernel);
            }
        }
        Ok(())
    }

    /// Re-plans a BLENDING seed's alpha as `parameters` say (see the module docs).
    fn change_blend(&mut self, id: &str, parameters: &BTreeMap<String, f32>) -> Result<(), KasminaError> {
        let change = BlendChange::from_parameters(parameters)?;
        let total = self.config.schedule.total_steps;
        let seed = self.seeds.get_mut(id).ok_or_else(|| KasminaError::UnknownSeed(id.into()))?;
        if seed.stage != Stage::Blending {
            return Err(KasminaError::BlendRefused { seed: id.into(), stage: seed.stage });
        }
        let left = seed.blend.map_or(total.saturating_sub(seed.steps_in_stage), |plan| plan.remaining());
        let plan = change.plan(seed.alpha, left);
        seed.blend = Some(plan);
        tracing::debug!(seed = id, ?plan, "kasmina.blend_changed");
        let attributes = [
            ("seed", id.to_owned()),
            ("target", plan.change.target.to_string()),
            ("steps", plan.steps.to_string()),
            ("curve", format!("{:?}", plan.change.curve)),
        ];
        self.event("blend_changed", TelemetryLevel::Info, &attributes);
        Ok(())
    }

    fn fresh_id(&mut self) -> String {
        self.next_seed += 1;
        format!("seed-{}", self.next_seed)
    }

    /// Attaches a fetched (or fallback) kernel to a germinated seed waiting for one.
    pub fn attach_kernel(&mut self, seed_id: &str, kernel: Kernel) -> Result<(), KasminaError> {
        let seed = self.seeds.get_mut(seed_id).ok_or_else(|| KasminaError::UnknownSeed(seed_id.into()))?;
        if seed.stage != Stage::Germinated || seed.kernel.is_some() {
            return Err(KasminaError::NotAwaitingKernel { seed: seed_id.into(), stage: seed.stage });
        }
        let source = format!("{:?}", kernel.source);
        seed.kernel = Some(kernel);
        self.event("kernel_attached", TelemetryLevel::Info, &[("seed", seed_id.into()), ("source", source)]);
        Ok(())
    }

    /// Seeds waiting for a kernel, with their blueprints (what to prefetch).
    pub fn awaiting_kernels(&self) -> Vec<(String, String)> {
        let waiting = self.seeds.iter().filter(|(_, s)| s.stage == Stage::Germinated && s.kernel.is_none());
        waiting.map(|(id, s)| (id.clone(), s.blueprint_id.clone())).collect()
    }

    /// Checks one backward pass of `seed_id` for gradient leakage between host and
    /// seed (see [`isolation`]); returns the overlap. A violation is counted
    /// (`kasmina.isolation.violations`), recorded (`violation_recorded`), degrades
    /// the seed's health and blocks its gates; in strict mode it is an error.
    pub fn check_isolation(&mut self, seed_id: &str, host: &[f32], seed: &[f32]) -> Result<f64, KasminaError> {
        self.held(seed_id)?;
        self.record_overlap(seed_id, isolation::gradient_overlap(host, seed))
    }

    /// [`check_isolation`](Self::check_isolation) with the overlap computed by
    /// `device` (on libtorch, over its tensors); the verdict is the same.
    pub fn check_isolation_on(
        &mut self,
        device: &dyn Device,
        seed_id: &str,
        host: &[f32],
        seed: &[f32],
    ) -> Result<f64, KasminaError> {
        self.held(seed_id)?;
        let overlap = device.gradient_overlap(host, seed).map_err(|error| KasminaError::Device(error.to_string()))?;
        self.record_overlap(seed_id, overlap)
    }

    fn held(&self, seed_id: &str) -> Result<(), KasminaError> {
        if self.seeds.contains_key(seed_id) { Ok(()) } else { Err(KasminaError::UnknownSeed(seed_id.into())) }
    }

    /// Judges one measured overlap (see [`check_isolation`](Self::check_isolation)).
    fn record_overlap(&mut self, seed_id: &str, overlap: f64) -> Result<f64, KasminaError> {
        if overlap <= OVERLAP_TOLERANCE {
            return Ok(overlap);
        }
        self.counters.isolation_violations += 1;
        tracing::warn!(seed = seed_id, overlap, strict = self.config.strict_isolation, "kasmina.violation_recorded");
        self.event(
            "violation_recorded",
            TelemetryLevel::Warning,
            &[("seed", seed_id.into()), ("overlap", format!("{overlap:e}"))],
        );
        let health = self.seeds.get_mut(seed_id).map(|seed| {
            seed.violations += 1;
            let before = seed.health;
            seed.health = if seed.violations >= UNHEALTHY_AFTER_VIOLATIONS {
                HealthStatus::Unhealthy
            } else {
                HealthStatus::Degraded
            };
            (before, seed.health)
        });
        if let Some((before, after)) = health.filter(|(before, after)| before != after) {
            tracing::debug!(seed = seed_id, %before, %after, "kasmina.seed_health");
            self.event(
                "seed_health",
                TelemetryLevel::Warning,
                &[("seed", seed_id.into()), ("health", after.as_str_name().into())],
            );
        }
        if self.config.strict_isolation {
            return Err(KasminaError::IsolationViolation { seed: seed_id.into(), overlap });
        }
        Ok(overlap)
    }

    /// Moves `id` to `to` if the lifecycle allows it, with a `seed_stage` event.
    fn transition(&mut self, id: &str, to: Stage) -> Result<(), KasminaError> {
        let seed = self.seeds.get_mut(id).ok_or_else(|| KasminaError::UnknownSeed(id.into()))?;
        let from = seed.stage;
        lifecycle::check(from, to)?;
        seed.stage = to;
        seed.steps_in_stage = 0;
        self.counters.transitions += 1;
        tracing::debug!(seed = id, %from, %to, "kasmina.seed_stage");
        self.event("seed_stage", TelemetryLevel::Info, &[("seed", id.into()), ("stage", to.as_str_name().into())]);
        Ok(())
    }

    /// CULLED → EMBARGOED, dropping the kernel (the caller checked CULLED is legal).
    fn cull(&mut self, id: &str) -> Result<(), KasminaError> {
        self.transition(id, Stage::Culled)?;
        if let Some(seed) = self.seeds.get_mut(id) {
            seed.kernel = None;
        }
        self.transition(id, Stage::Embargoed)
    }

    /// Advances every seed by one optimizer step.
    pub fn advance(&mut self) {
        let ids: Vec<String> = self.seeds.keys().cloned().collect();
        for id in ids {
            let Some(seed) = self.seeds.get_mut(&id) else { continue };
            seed.steps_in_stage += 1;
            if seed.stage == Stage::Blending {
                seed.alpha = match &mut seed.blend {
                    Some(plan) => plan.step(),
                    None => self.config.schedule.alpha(seed.steps_in_stage),
                };
            }
            if seed.stage == Stage::Resetting {
                // A reset starts clean: G5 checks it did.
                (seed.kernel, seed.violations, seed.health, seed.alpha) = (None, 0, HealthStatus::Healthy, 0.0);
                seed.blend = None;
            }
            let Some(next) = due(&self.config, seed) else { continue };
            let verdict = gates::evaluate(next, &seed.gate_inputs());
            if let Some(verdict) = verdict {
                self.record_gate(&id, verdict);
                if !verdict.passed {
                    self.fail_gate(&id, verdict);
                    continue;
                }
            }
            // `due` only proposes legal successors; a refusal here would be a bug.
            let moved = self.transition(&id, next);
            debug_assert!(moved.is_ok(), "{moved:?}");
        }
    }

    fn record_gate(&mut self, id: &str, verdict: GateVerdict) {
        if verdict.passed {
            self.counters.gates_passed += 1;
        }
        let attributes = [
            ("seed", id.to_owned()),
            ("gate", verdict.gate.as_str_name().trim_start_matches("SEED_GATE_").to_owned()),
            ("passed", verdict.passed.to_string()),
            ("condition", verdict.condition.to_owned()),
        ];
        self.event("gate_event", TelemetryLevel::Info, &attributes);
    }

    /// A failed gate culls the seed (then embargo), as Esper-Lite's gate failure.
    fn fail_gate(&mut self, id: &str, verdict: GateVerdict) {
        self.counters.gate_failures += 1;
        let level =
            if gates::is_critical(verdict.condition) { TelemetryLevel::Critical } else { TelemetryLevel::Warning };
        tracing::warn!(seed = id, gate = %verdict.gate, reason = verdict.condition, "kasmina.gate_failure");
        let gate = verdict.gate.as_str_name().trim_start_matches("SEED_GATE_").to_owned();
        self.event("gate_failure", level, &[("seed", id.into()), ("gate", gate), ("reason", verdict.condition.into())]);
        let stage = self.seeds.get(id).map(|s| s.stage);
        if stage.is_some_and(|stage| lifecycle::check(stage, Stage::Culled).is_ok()) {
            let culled = self.cull(id);
            debug_assert!(culled.is_ok(), "{culled:?}");
        }
    }

    /// The seeds as Leyline `SeedState`s, in id order.
    pub fn states(&self) -> Vec<SeedState> {
        self.seeds
            .iter()
            .map(|(id, seed)| SeedState {
                seed_id: id.clone(),
                stage: seed.stage.into(),
                metrics: [
                    ("alpha".to_owned(), seed.alpha),
                    ("isolation_violations".to_owned(), seed.violations as f32),
                ]
                .into(),
                age_epochs: 0,
                ..SeedState::default()
            })
            .collect()
    }

    /// What the device should hold (see [`SeedGraft`]): every seed with a kernel
    /// from TRAINING to FOSSILIZED, shaped by its kernel's Karn blueprint (the
    /// fallback kernel's, when the fetch failed), blended CONVEX, Esper-Lite's
    /// default (RESIDUAL with [`KasminaConfig::residual_blend`]). TRAINING serves alpha 0; SHADOWING and PROBATIONARY keep blending
    /// at the alpha the schedule reached. A kernel whose blueprint Karn does not
    /// know cannot be shaped and is left out, with a warning.
    pub fn grafts(&self) -> Vec<SeedGraft> {
        let mut plan = Vec::new();
        for (id, seed) in &self.seeds {
            let stage = match seed.stage {
                Stage::Training => GraftStage::Training,
                Stage::Blending | Stage::Shadowing | Stage::Probationary => GraftStage::Blending,
                Stage::Fossilized => GraftStage::Fossilized,
                _ => continue,
            };
            let Some(kernel) = &seed.kernel else { continue };
            let Some(blueprint) = self.catalog.get(&kernel.blueprint_id) else {
                tracing::warn!(seed = %id, blueprint = %kernel.blueprint_id, "kasmina: kernel blueprint not in Karn");
                continue;
            };
            plan.push(SeedGraft {
                seed_id: id.clone(),
                inputs: blueprint.module.inputs,
                outputs: blueprint.module.outputs,
                stage,
                alpha: seed.alpha,
                mode: if self.config.residual_blend { BlendMode::Residual } else { BlendMode::Convex },
            });
        }
        plan
    }

    /// The stage of `id`, if held.
    pub fn stage(&self, id: &str) -> Option<Stage> {
        self.seeds.get(id).map(|s| s.stage)
    }

    /// The health of `id`, if held.
    pub fn health(&self, id: &str) -> Option<HealthStatus> {
        self.seeds.get(id).map(|s| s.health)
    }

    /// Seeds taking part in the forward pass. The planted `active-skips-fossilized`
    /// bug leaves out the fossilized ones, as if frozen into the host they no
    /// longer counted.
    pub fn active(&self) -> usize {
        let skip_fossilized = self.config.planted.armed(PlantedBug::ActiveSkipsFossilized);
        let counted = |stage| lifecycle::is_active(stage) && !(skip_fossilized && stage == Stage::Fossilized);
        self.seeds.values().filter(|s| counted(s.stage)).count()
    }

    /// Counters so far.
    pub fn counters(&self) -> KasminaCounters {
        self.counters
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<TelemetryEvent> {
        std::mem::take(&mut self.events)
    }

    /// Per-seed `kasmina.seed.alpha`, `.stage`, `.health` (attribute `seed`),
    /// every counter and `kasmina.seeds.active`, with the pending events, as
    /// packets within 280 bytes.
    pub fn telemetry(&mut self, timestamp_ms: u64) -> Vec<TelemetryPacket> {
        let mut metrics = Vec::new();
        for (id, seed) in &self.seeds {
            for (name, value) in [
                ("kasmina.seed.alpha", f64::from(seed.alpha)),
                ("kasmina.seed.stage", f64::from(i32::from(seed.stage))),
                ("kasmina.seed.health", f64::from(i32::from(seed.health))),
            ] {
                let mut point = MetricPoint::new(name, value, "");
                point.attributes.insert("seed".to_owned(), id.clone());
                metrics.push(point);
            }
        }
        metrics.extend(self.counters.points());
        metrics.push(MetricPoint::new("kasmina.seeds.active", self.active() as f64, ""));
        telemetry::packets("kasmina", metrics, self.take_events(), timestamp_ms)
    }

    fn event(&mut self, name: &str, level: TelemetryLevel, attributes: &[(&str, String)]) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.remove(0);
            self.counters.events_dropped += 1;
        }
        self.events.push(TelemetryEvent::named(name, level, attributes));
    }
}

/// The stage a seed moves to at this step, if any.
fn due(c: &KasminaConfig, seed: &Seed) -> Option<Stage> {
    let n = seed.steps_in_stage;
    match seed.stage {
        Stage::Germinated if seed.kernel.is_some() => Some(Stage::Training),
        Stage::Training if n >= c.training_steps => Some(Stage::Blending),
        Stage::Blending if blend_done(c, seed) => Some(Stage::Shadowing),
        Stage::Shadowing => Some(Stage::Probationary),
        Stage::Probationary if n >= c.probation_steps => Some(Stage::Fossilized),
        Stage::Embargoed if n >= c.embargo_steps => Some(Stage::Resetting),
        Stage::Resetting => Some(Stage::Dormant),
        _ => None,
    }
}

/// A blend is done when its window has run out and alpha has reached 1; a commanded
/// blend held below 1 waits for the next change.
fn blend_done(c: &KasminaConfig, seed: &Seed) -> bool {
    match seed.blend {
        Some(plan) => plan.remaining() == 0 && seed.alpha >= 1.0,
        None => seed.steps_in_stage >= c.schedule.total_steps,
    }
}

/// What a checkpoint keeps of the manager: every seed as it stands and the number the
/// next seed takes (so a resumed run names its seeds as an unbroken one would).
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedPlan {
    next_seed: u64,
    seeds: BTreeMap<String, Seed>,
}

impl SeedManager {
    /// The seeds and the seed counter as JSON; empty for a manager that never
    /// germinated (a seedless run's checkpoint stays in the format from before seeds).
    pub fn plan(&self) -> Result<Vec<u8>, PortError> {
        if self.seeds.is_empty() && self.next_seed == 0 {
            return Ok(Vec::new());
        }
        let saved = SavedPlan { next_seed: self.next_seed, seeds: self.seeds.clone() };
        serde_json::to_vec(&saved).map_err(|error| plan_refused(&error))
    }

    /// Replaces the seeds and the seed counter with a [`SeedManager::plan`]'s; an
    /// empty plan means no seeds. Counters and pending events are this life's own.
    pub fn restore_plan(&mut self, plan: &[u8]) -> Result<(), PortError> {
        let saved = if plan.is_empty() {
            SavedPlan { next_seed: 0, seeds: BTreeMap::new() }
        } else {
            serde_json::from_slice(plan).map_err(|error| plan_refused(&error))?
        };
        self.next_seed = saved.next_seed;
        self.seeds = saved.seeds;
        Ok(())
    }
}

fn plan_refused(error: &serde_json::Error) -> PortError {
    PortError::Refused { service: "kasmina", reason: format!("seed plan: {error}") }
}

impl KasminaPort for SeedManager {
    async fn apply_command(&mut self, command: &AdaptationCommand) -> Result<(), PortError> {
        self.apply(command).map_err(|error| PortError::Refused { service: "kasmina", reason: error.to_string() })
    }

    fn seed_states(&self) -> Vec<SeedState> {
        self.states()
    }

    fn finalize_step(&mut self, _global_step: u64) {
        self.advance();
    }

    fn grafts(&self) -> Vec<SeedGraft> {
        SeedManager::grafts(self)
    }

    fn plan(&self) -> Result<Vec<u8>, PortError> {
        SeedManager::plan(self)
    }

    fn restore_plan(&mut self, plan: &[u8]) -> Result<(), PortError> {
        SeedManager::restore_plan(self, plan)
    }

    fn check_isolation(&mut self, device: &dyn Device, seed_id: &str, gradients: &Gradients) -> Result<(), PortError> {
        self.check_isolation_on(device, seed_id, &gradients.host, &gradients.seed)
            .map(|_| ())
            .map_err(|error| PortError::Refused { service: "kasmina", reason: error.to_string() })
    }
}
