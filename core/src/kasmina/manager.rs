//! The seed manager: applies Tamiyo's seed commands and walks each seed through its
//! lifecycle, one checked transition at a time.
//!
//! Progress is driven by Tolaria's `finalize_step`: a germinated seed starts training
//! on the next step, trains for `training_steps`, blends in over the alpha schedule,
//! shadows for one step, and is fossilized after `probation_steps` of probation. A cull
//! sends a seed through CULLED → EMBARGOED; after `embargo_steps` it resets to DORMANT.
//! Every transition goes through [`lifecycle::check`]; a command that would need an
//! illegal one is refused with a typed error, an event and a counter — never a silent
//! no-op.

use std::collections::BTreeMap;

use super::blending::AlphaSchedule;
use super::lifecycle::{self, IllegalTransition};
use crate::leyline::{
    AdaptationCommand, CommandPayload, CommandType, SeedLifecycleStage as Stage, SeedOperation, SeedState,
    TelemetryEvent, TelemetryLevel,
};
use crate::tolaria::ports::{KasminaPort, PortError};

/// Pacing of the lifecycle, in optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KasminaConfig {
    pub training_steps: u32,
    pub probation_steps: u32,
    pub embargo_steps: u32,
    /// Seeds held at once (any stage but TERMINATED).
    pub max_seeds: usize,
    pub schedule: AlphaSchedule,
}

impl Default for KasminaConfig {
    fn default() -> Self {
        Self {
            training_steps: 8,
            probation_steps: 8,
            embargo_steps: 30,
            max_seeds: 16,
            schedule: AlphaSchedule::default(),
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

/// One seed as Kasmina tracks it.
#[derive(Debug, Clone, PartialEq)]
struct Seed {
    stage: Stage,
    blueprint_id: String,
    /// Steps spent in the current stage.
    steps_in_stage: u32,
    alpha: f32,
}

/// Counters, named as Kasmina's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KasminaCounters {
    pub commands_applied: u64,
    pub commands_rejected: u64,
    pub transitions: u64,
    pub gate_failures: u64,
    /// Events discarded because nobody drained them in time.
    pub events_dropped: u64,
}

/// Events held for [`SeedManager::take_events`]; the oldest go first beyond this.
const MAX_PENDING_EVENTS: usize = 256;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct SeedManager {
    config: KasminaConfig,
    seeds: BTreeMap<String, Seed>,
    next_seed: u64,
    counters: KasminaCounters,
    events: Vec<TelemetryEvent>,
}

impl SeedManager {
    /// A manager with no seeds.
    pub fn new(config: KasminaConfig) -> Self {
        Self { config, seeds: BTreeMap::new(), next_seed: 0, counters: KasminaCounters::default(), events: Vec::new() }
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
        match &result {
            Ok(()) => self.counters.commands_applied += 1,
            Err(error) => {
                self.counters.commands_rejected += 1;
                tracing::warn!(command_id = %command.command_id, %error, "kasmina.command_rejected");
                self.event("command_rejected", TelemetryLevel::Warning, &[("error", error.to_string())]);
            }
        }
        result
    }

    fn seed_operation(
        &mut self,
        operation: SeedOperation,
        target: &str,
        blueprint_id: &str,
        parameters: &BTreeMap<String, f32>,
    ) -> Result<(), KasminaError> {
        match operation {
            SeedOperation::Germinate => self.germinate(target, blueprint_id, parameters),
            SeedOperation::Cull => {
                let stage =
                    self.seeds.get(target).map(|s| s.stage).ok_or_else(|| KasminaError::UnknownSeed(target.into()))?;
                lifecycle::check(stage, Stage::Culled)?;
                self.transition(target, Stage::Culled)?;
                self.transition(target, Stage::Embargoed)
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
        if !self.seeds.contains_key(&id) {
            if self.seeds.len() >= self.config.max_seeds {
                return Err(KasminaError::Full(self.seeds.len()));
            }
            let seed = Seed { stage: Stage::Unknown, blueprint_id: String::new(), steps_in_stage: 0, alpha: 0.0 };
            self.seeds.insert(id.clone(), seed);
            self.transition(&id, Stage::Dormant)?;
        }
        self.transition(&id, Stage::Germinated)?;
        if let Some(seed) = self.seeds.get_mut(&id) {
            seed.blueprint_id = blueprint_id.to_owned();
        }
        Ok(())
    }

    fn fresh_id(&mut self) -> String {
        self.next_seed += 1;
        format!("seed-{}", self.next_seed)
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

    /// Advances every seed by one optimizer step.
    pub fn advance(&mut self) {
        let ids: Vec<String> = self.seeds.keys().cloned().collect();
        for id in ids {
            let Some(seed) = self.seeds.get_mut(&id) else { continue };
            seed.steps_in_stage += 1;
            if seed.stage == Stage::Blending {
                seed.alpha = self.config.schedule.alpha(seed.steps_in_stage);
            }
            if let Some(next) = due(&self.config, seed) {
                // `due` only proposes legal successors; a refusal here would be a bug.
                let moved = self.transition(&id, next);
                debug_assert!(moved.is_ok(), "{moved:?}");
            }
        }
    }

    /// The seeds as Leyline `SeedState`s, in id order.
    pub fn states(&self) -> Vec<SeedState> {
        self.seeds
            .iter()
            .map(|(id, seed)| SeedState {
                seed_id: id.clone(),
                stage: seed.stage.into(),
                metrics: [("alpha".to_owned(), seed.alpha)].into(),
                age_epochs: 0,
                ..SeedState::default()
            })
            .collect()
    }

    /// The stage of `id`, if held.
    pub fn stage(&self, id: &str) -> Option<Stage> {
        self.seeds.get(id).map(|s| s.stage)
    }

    /// Seeds taking part in the forward pass.
    pub fn active(&self) -> usize {
        self.seeds.values().filter(|s| lifecycle::is_active(s.stage)).count()
    }

    /// Counters so far.
    pub fn counters(&self) -> KasminaCounters {
        self.counters
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<TelemetryEvent> {
        std::mem::take(&mut self.events)
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
        Stage::Germinated => Some(Stage::Training),
        Stage::Training if n >= c.training_steps => Some(Stage::Blending),
        Stage::Blending if n >= c.schedule.total_steps => Some(Stage::Shadowing),
        Stage::Shadowing => Some(Stage::Probationary),
        Stage::Probationary if n >= c.probation_steps => Some(Stage::Fossilized),
        Stage::Embargoed if n >= c.embargo_steps => Some(Stage::Resetting),
        Stage::Resetting => Some(Stage::Dormant),
        _ => None,
    }
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
}
