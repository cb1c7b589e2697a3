//! The oracle of `kasmina-lifecycle`: Kasmina's seeds as Esper-Lite's lifecycle
//! and gates say they must evolve, written from the reference rather than from
//! `esper_core::kasmina` (only the config's numbers and the fresh seeds' names are
//! shared), so that a wrong edge, gate or count in Kasmina is a disagreement. The
//! legal moves and the forward-pass stages are the `seed-lifecycle` watch's own
//! tables ([`crate::drills::lifecycle`]), declared there once.
//!
//! The rules it keeps: a GERMINATE takes a new seed (while there is room) or a
//! DORMANT one, and needs a blueprint and finite parameters (G0); one carrying blend
//! parameters for a seed past DORMANT is a blend change, which only a BLENDING seed
//! takes; a CULL takes a seed from GERMINATED to PROBATIONARY; a kernel attaches to
//! a GERMINATED seed without one. Each optimizer step, every seed ages a step and
//! moves on when due — GERMINATED with a kernel, TRAINING after `training_steps`,
//! BLENDING after the blend's steps, SHADOWING at once, PROBATIONARY after
//! `probation_steps`, EMBARGOED after `embargo_steps`, RESETTING at once (cleared:
//! no kernel, no violations) — through its gate: G1 (kernel, no violations), G2
//! (fewer than 3 violations: not unhealthy), G4 (not the fallback kernel, no
//! violations). A failed gate culls the seed straight through to EMBARGOED,
//! dropping its kernel.

use std::collections::BTreeMap;

use esper_core::kasmina::{KasminaConfig, KasminaCounters};
use esper_core::leyline::{HealthStatus, SeedLifecycleStage as Stage};

use crate::drills::lifecycle::{ACTIVE, legal};

/// Violations after which a seed is unhealthy and fails G2 (Esper-Lite's
/// isolation breaker).
const UNHEALTHY_AFTER: u32 = 3;

/// The kernel a seed holds, as far as the gates care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// Urza's (fetched or cached) or Kasmina's built-in one.
    Own,
    /// The fallback, attached when the fetch failed: G4 refuses it.
    Fallback,
}

/// One seed as the model expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSeed {
    pub stage: Stage,
    steps: u32,
    pub kernel: Option<KernelKind>,
    pub violations: u32,
}

impl ModelSeed {
    /// Health as the violations make it: degraded from the first, unhealthy from the third.
    pub fn health(&self) -> HealthStatus {
        match self.violations {
            0 => HealthStatus::Healthy,
            n if n < UNHEALTHY_AFTER => HealthStatus::Degraded,
            _ => HealthStatus::Unhealthy,
        }
    }

    fn cull(&mut self) {
        (self.stage, self.steps, self.kernel) = (Stage::Embargoed, 0, None);
    }
}

/// A seed command, as the drill draws it.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// GERMINATE with `target` (empty: Kasmina names a new seed), `blueprint`
    /// (empty fails G0) and `parameters`.
    Germinate { target: String, blueprint: String, parameters: BTreeMap<String, f32> },
    /// CULL `target`.
    Cull { target: String },
    /// A seed command that lost its seed operation on the way: always refused.
    Bare { target: String },
}

/// The model: every seed Kasmina should hold.
#[derive(Debug, Clone)]
pub struct Model {
    config: KasminaConfig,
    pub seeds: BTreeMap<String, ModelSeed>,
    /// How many seeds Kasmina has named (`seed-<n>` for the next one).
    named: u64,
    /// Kasmina's counters as they must stand: a command applied or refused, a
    /// transition per stage moved through (a cull is two: CULLED, EMBARGOED; a new
    /// seed too: DORMANT, GERMINATED), a gate passed or failed per evaluation (G0
    /// on each germination, the others on each move into their stage), a
    /// violation per leaky backward pass. Nothing dropped: the drill drains often.
    pub counters: KasminaCounters,
    /// Seeds a failed gate culled (by the stage it guards: TRAINING for G1,
    /// BLENDING for G2, PROBATIONARY for G4), and seeds back to DORMANT after an
    /// embargo: what the run's tally reports to show the unhappy path was walked.
    pub gate_culls: BTreeMap<Stage, u64>,
    pub resets: u64,
    pub fossilized: u64,
    /// Whether a leaky report is refused (`KASMINA_STRICT_ISOLATION`), as the
    /// scenario reads its own drawn setting: never taken from the config under test.
    pub strict: bool,
}

impl Model {
    pub fn new(config: KasminaConfig) -> Self {
        Self {
            config,
            seeds: BTreeMap::new(),
            named: 0,
            counters: KasminaCounters::default(),
            gate_culls: BTreeMap::new(),
            resets: 0,
            fossilized: 0,
            strict: false,
        }
    }

    /// Applies `order`; returns whether Kasmina must accept it.
    pub fn apply(&mut self, order: &Order) -> bool {
        let accepted = match order {
            Order::Germinate { target, blueprint, parameters } => self.germinate(target, blueprint, parameters),
            Order::Cull { target } => match self.seeds.get_mut(target) {
                Some(seed) if legal(seed.stage, Stage::Culled) => {
                    seed.cull();
                    self.counters.transitions += 2;
                    true
                }
                _ => false,
            },
            Order::Bare { .. } => false,
        };
        if accepted {
            self.counters.commands_applied += 1;
        } else {
            self.counters.commands_rejected += 1;
        }
        accepted
    }

    fn germinate(&mut self, target: &str, blueprint: &str, parameters: &BTreeMap<String, f32>) -> bool {
        let past_dormant = self.seeds.get(target).filter(|seed| seed.stage != Stage::Dormant);
        if parameters.keys().any(|name| is_blend_parameter(name)) && past_dormant.is_some() {
            // A blend change: only a blending seed takes one (the drill commands alpha 1,
            // so the blend still ends when its window does).
            return past_dormant.is_some_and(|seed| seed.stage == Stage::Blending);
        }
        if blueprint.is_empty() || parameters.values().any(|value| !value.is_finite()) {
            self.counters.gate_failures += 1;
            return false;
        }
        let id = if target.is_empty() {
            self.named += 1;
            format!("seed-{}", self.named)
        } else {
            target.to_owned()
        };
        let kernel = self.config.builtin_kernels.then_some(KernelKind::Own);
        let full = self.seeds.len() >= self.config.max_seeds;
        let moves = match self.seeds.get_mut(&id) {
            Some(seed) if seed.stage == Stage::Dormant => {
                (seed.stage, seed.steps, seed.kernel) = (Stage::Germinated, 0, kernel);
                1
            }
            Some(_) => return false,
            None if full => return false,
            None => {
                let seed = ModelSeed { stage: Stage::Germinated, steps: 0, kernel, violations: 0 };
                self.seeds.insert(id, seed);
                2
            }
        };
        self.counters.gates_passed += 1;
        self.counters.transitions += moves;
        true
    }

    /// Attaches a kernel of `kind` to `target`; whether Kasmina must accept it.
    pub fn attach(&mut self, target: &str, kind: KernelKind) -> bool {
        match self.seeds.get_mut(target) {
            Some(seed) if seed.stage == Stage::Germinated && seed.kernel.is_none() => {
                seed.kernel = Some(kind);
                true
            }
            _ => false,
        }
    }

    /// A measured gradient overlap on `target` (`leaky`: above zero); whether
    /// Kasmina must take the report (it refuses seeds it does not hold, and under
    /// strict isolation a leaky report, after counting the violation).
    pub fn isolation(&mut self, target: &str, leaky: bool) -> bool {
        let Some(seed) = self.seeds.get_mut(target) else { return false };
        seed.violations += u32::from(leaky);
        self.counters.isolation_violations += u64::from(leaky);
        !(leaky && self.strict)
    }

    /// One optimizer step.
    pub fn advance(&mut self) {
        let c = self.config;
        for seed in self.seeds.values_mut() {
            seed.steps += 1;
            if seed.stage == Stage::Resetting {
                (seed.kernel, seed.violations) = (None, 0);
            }
            let next = match seed.stage {
                Stage::Germinated if seed.kernel.is_some() => Stage::Training,
                Stage::Training if seed.steps >= c.training_steps => Stage::Blending,
                Stage::Blending if seed.steps >= c.schedule.total_steps => Stage::Shadowing,
                Stage::Shadowing => Stage::Probationary,
                Stage::Probationary if seed.steps >= c.probation_steps => Stage::Fossilized,
                Stage::Embargoed if seed.steps >= c.embargo_steps => Stage::Resetting,
                Stage::Resetting => Stage::Dormant,
                _ => continue,
            };
            let (gated, passes) = match next {
                Stage::Training => (true, seed.kernel.is_some() && seed.violations == 0),
                Stage::Blending => (true, seed.violations < UNHEALTHY_AFTER),
                Stage::Probationary => (true, seed.kernel != Some(KernelKind::Fallback) && seed.violations == 0),
                // G3 wants the blend complete, which is what made the seed due; G5
                // wants the reset clean, which the step just made it.
                Stage::Shadowing | Stage::Dormant => (true, true),
                _ => (false, true),
            };
            if passes {
                (seed.stage, seed.steps) = (next, 0);
                self.counters.transitions += 1;
                self.counters.gates_passed += u64::from(gated);
                self.resets += u64::from(next == Stage::Dormant);
                self.fossilized += u64::from(next == Stage::Fossilized);
            } else {
                seed.cull();
                self.counters.transitions += 2;
                self.counters.gate_failures += 1;
                *self.gate_culls.entry(next).or_default() += 1;
            }
        }
    }

    /// Seeds in a forward-pass stage.
    pub fn active(&self) -> usize {
        self.seeds.values().filter(|seed| ACTIVE.contains(&seed.stage)).count()
    }

    /// Seeds waiting for a kernel, in id order.
    pub fn awaiting(&self) -> Vec<String> {
        let waiting = self.seeds.iter().filter(|(_, seed)| seed.stage == Stage::Germinated && seed.kernel.is_none());
        waiting.map(|(id, _)| id.clone()).collect()
    }
}

/// A parameter that makes a GERMINATE for a seed past DORMANT a blend change.
fn is_blend_parameter(name: &str) -> bool {
    ["alpha", "blending_method_index", "blending_schedule_start", "blending_schedule_end", "blending_steps"]
        .contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KasminaConfig {
        let mut config = KasminaConfig {
            training_steps: 2,
            probation_steps: 2,
            embargo_steps: 2,
            max_seeds: 2,
            builtin_kernels: false,
            ..KasminaConfig::default()
        };
        config.schedule.total_steps = 2;
        config
    }

    fn germinate(target: &str) -> Order {
        Order::Germinate { target: target.to_owned(), blueprint: "BP001".to_owned(), parameters: BTreeMap::new() }
    }

    fn stage(model: &Model, id: &str) -> Stage {
        model.seeds[id].stage
    }

    #[test]
    fn a_seed_walks_the_lifecycle_through_its_gates() {
        let mut model = Model::new(config());
        assert!(model.apply(&germinate("")));
        model.advance();
        assert_eq!(stage(&model, "seed-1"), Stage::Germinated, "no kernel yet");
        assert!(model.attach("seed-1", KernelKind::Own));
        assert!(!model.attach("seed-1", KernelKind::Own), "one kernel");
        let walk = [Stage::Training, Stage::Training, Stage::Blending, Stage::Blending, Stage::Shadowing];
        for expected in walk {
            model.advance();
            assert_eq!(stage(&model, "seed-1"), expected);
        }
        model.advance();
        assert_eq!(stage(&model, "seed-1"), Stage::Probationary);
        model.advance();
        model.advance();
        assert_eq!(stage(&model, "seed-1"), Stage::Fossilized);
        assert_eq!(model.active(), 1);
        assert!(!model.apply(&Order::Cull { target: "seed-1".to_owned() }), "fossilized seeds stay");
    }

    #[test]
    fn a_leaky_seed_is_culled_at_its_next_gate_and_comes_back_dormant() {
        let mut model = Model::new(config());
        assert!(model.apply(&germinate("graft-a")));
        assert!(model.isolation("graft-a", true));
        assert_eq!(model.seeds["graft-a"].health(), HealthStatus::Degraded);
        assert!(model.attach("graft-a", KernelKind::Own));
        model.advance();
        assert_eq!(stage(&model, "graft-a"), Stage::Embargoed, "G1 refuses a violation");
        assert!(!model.apply(&germinate("graft-a")), "an embargoed seed cannot germinate");
        for expected in [Stage::Embargoed, Stage::Resetting, Stage::Dormant] {
            model.advance();
            assert_eq!(stage(&model, "graft-a"), expected);
        }
        assert_eq!(model.seeds["graft-a"].violations, 0);
        assert!(model.apply(&germinate("graft-a")), "a dormant seed germinates again");
    }

    #[test]
    fn commands_the_lifecycle_refuses_are_refused() {
        let mut model = Model::new(config());
        assert!(!model.apply(&Order::Cull { target: "seed-9".to_owned() }), "unknown seed");
        let no_blueprint = Order::Germinate { target: String::new(), blueprint: String::new(), parameters: [].into() };
        assert!(!model.apply(&no_blueprint), "G0");
        assert!(model.apply(&germinate("")) && model.apply(&germinate("")));
        assert!(!model.apply(&germinate("")), "full at max_seeds");
        assert!(!model.apply(&germinate("seed-1")), "germinated already");
        let blend = Order::Germinate {
            target: "seed-1".to_owned(),
            blueprint: "BP001".to_owned(),
            parameters: [("alpha".to_owned(), 1.0)].into(),
        };
        assert!(!model.apply(&blend), "a blend change for a seed not blending");
        assert!(model.apply(&Order::Cull { target: "seed-1".to_owned() }));
        assert_eq!(stage(&model, "seed-1"), Stage::Embargoed);
    }
}
