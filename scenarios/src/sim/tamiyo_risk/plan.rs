//! The drawn run `tamiyo-risk` sends: a blueprint catalog, the policy's rotation
//! over it, and for each step a packet and the metadata source's delay.
//!
//! Values are drawn from short lists that hold each gate's threshold exactly, a
//! value just under it and one over it, so a gate that compares the wrong way
//! (`>=` for `>`, or the reverse) rules differently on some step.

use std::time::Duration;

use esper_core::leyline::{BlueprintTier, HardwareContext, SeedLifecycleStage, SeedState, SystemStatePacket};
use esper_core::tamiyo::risk::keys;
use esper_core::tamiyo::trend::LossTrend;
use esper_core::tamiyo::{BlueprintMetadata, TamiyoConfig};
use esper_sim::RngTree;
use rand::Rng;
use rand::seq::IndexedRandom;

/// Packets per run.
const STEPS: u64 = 64;
/// Blueprints in the drawn catalog.
const BLUEPRINTS: usize = 5;
/// A blueprint the policy proposes that the catalog lacks.
const UNKNOWN_BLUEPRINT: &str = "BP-UNKNOWN";
/// Delays of the metadata source outside an outage: all within the 25 ms timeout.
const QUICK_MS: [u64; 5] = [0, 0, 5, 10, 20];
/// Delays during an outage: all past it (never equal to it, where the lookup and
/// its timeout would fall due at the same instant).
const OUTAGE_MS: [u64; 2] = [40, 60];

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub catalog: Vec<BlueprintMetadata>,
    /// The policy's blueprints, in the order it proposes them.
    pub rotation: Vec<String>,
    /// Each step's packet and the metadata source's delay while it is decided.
    pub steps: Vec<(SystemStatePacket, Duration)>,
}

impl Plan {
    /// Draws a run for a Tamiyo configured as `config` (its thresholds place the
    /// drawn values; its policy's smoothing aims the losses).
    pub fn draw(rng: &RngTree, config: &TamiyoConfig) -> Self {
        let mut draws = rng.stream("blueprints");
        let catalog: Vec<BlueprintMetadata> = (0..BLUEPRINTS).map(|n| blueprint(n, config, &mut draws)).collect();
        let mut rotation: Vec<String> = catalog.iter().map(|m| m.blueprint_id.clone()).collect();
        rotation.insert(draws.random_range(0..=rotation.len()), UNKNOWN_BLUEPRINT.to_owned());
        let outages = outages(&mut rng.stream("outages"));
        let (mut draws, mut losses) = (rng.stream("packets"), Losses::new(config));
        let steps = (1..=STEPS)
            .map(|step| {
                let outage = outages.iter().any(|window| window.contains(&step));
                let delay_ms = *if outage { &OUTAGE_MS[..] } else { &QUICK_MS[..] }.choose(&mut draws).unwrap_or(&0);
                (packet(step, config, &mut losses, &mut draws), Duration::from_millis(delay_ms))
            })
            .collect();
        Self { catalog, rotation, steps }
    }
}

/// One or two windows of 4–12 steps in which Urza is slower than the timeout.
fn outages(draws: &mut impl Rng) -> Vec<std::ops::Range<u64>> {
    (0..draws.random_range(1..=2))
        .map(|_| {
            let start = draws.random_range(4..STEPS - 12);
            start..start + draws.random_range(4..=12)
        })
        .collect()
}

/// The `n`-th catalog entry: a risk under, at or over the warning and quarantine
/// thresholds; now and then quarantine-only whatever its risk.
fn blueprint(n: usize, config: &TamiyoConfig, draws: &mut impl Rng) -> BlueprintMetadata {
    let (warn, pause) = (config.risk.blueprint_risk_warn, config.risk.blueprint_risk_pause);
    let risks = [0.0, warn / 2.0, warn, (warn + pause) / 2.0, pause, pause, (pause + 1.0) / 2.0];
    BlueprintMetadata {
        blueprint_id: format!("BP-RISK-{n}"),
        name: format!("drawn blueprint {n}"),
        tier: BlueprintTier::Experimental,
        risk: *risks.choose(draws).unwrap_or(&0.0),
        quarantine_only: draws.random_bool(0.2),
        approval_required: false,
    }
}

/// A value drawn from `values`, or absent for the first `absent` draws' worth.
fn maybe(draws: &mut impl Rng, absent: usize, values: &[f32]) -> Option<f32> {
    let index = draws.random_range(0..absent + values.len());
    index.checked_sub(absent).map(|i| values[i])
}

/// The packet of `step`.
fn packet(step: u64, config: &TamiyoConfig, losses: &mut Losses, draws: &mut impl Rng) -> SystemStatePacket {
    let risk = &config.risk;
    let (hook, step_ms, kasmina) = (risk.hook_budget_ms, risk.step_latency_warn_ms, risk.kasmina_latency_warn_ms);
    let metrics = [
        (keys::HOOK_LATENCY_MS, maybe(draws, 9, &[hook / 5.0, hook, hook, hook + 1.0])),
        (keys::STEP_LATENCY_MS, maybe(draws, 3, &[step_ms - 20.0, step_ms, step_ms + 1.0, step_ms * 2.0])),
        (keys::KASMINA_APPLY_MS, maybe(draws, 4, &[kasmina / 3.0, kasmina, kasmina + 1.0])),
        (keys::KASMINA_FINALIZE_MS, maybe(draws, 4, &[kasmina / 3.0, kasmina, kasmina + 1.0])),
        (keys::ISOLATION_VIOLATIONS, maybe(draws, 14, &[0.0, 0.0, 2.0])),
    ];
    let device = risk.device_utilization_pause_percent;
    let utilization = maybe(draws, 5, &[40.0, device - 0.5, device, device, 99.0]);
    SystemStatePacket {
        version: 1,
        global_step: step,
        current_epoch: 1,
        training_loss: losses.next(step, draws),
        validation_loss: 1.0,
        training_metrics: metrics.into_iter().filter_map(|(key, value)| Some((key.to_owned(), value?))).collect(),
        seed_states: (0..draws.random_range(0..=3)).map(|n| seed(n, config, draws)).collect(),
        hardware_context: utilization
            .map(|utilization_percent| HardwareContext { utilization_percent, ..HardwareContext::default() }),
        packet_id: format!("tamiyo-risk-{step}"),
        source_subsystem: "tolaria".to_owned(),
        training_run_id: "tamiyo-risk".to_owned(),
        ..SystemStatePacket::default()
    }
}

/// A seed: mostly out of flight (so the policy may germinate) and calm, now and
/// then at or over the policy-risk thresholds, or reporting isolation violations.
fn seed(n: u32, config: &TamiyoConfig, draws: &mut impl Rng) -> SeedState {
    use SeedLifecycleStage::{Blending, Culled, Dormant, Fossilized, Training};
    let (warn, pause) = (config.risk.policy_risk_warn_seed, config.risk.policy_risk_pause);
    let stage = *[Dormant, Dormant, Fossilized, Culled, Training, Blending].choose(draws).unwrap_or(&Dormant);
    let calm = [0.1, 0.2, 0.4];
    let risky = [warn - 0.01, warn, (warn + pause) / 2.0, pause - 0.001, pause, 1.0, f32::NAN];
    let risk_score = if draws.random_bool(0.75) { calm.choose(draws) } else { risky.choose(draws) };
    let metrics = maybe(draws, 12, &[0.0, 1.0])
        .map(|violations| (keys::SEED_ISOLATION_VIOLATIONS.to_owned(), violations))
        .into_iter()
        .collect();
    SeedState {
        seed_id: format!("seed-{n}"),
        stage: stage.into(),
        gradient_norm: 1.0,
        learning_rate: 0.01,
        risk_score: *risk_score.unwrap_or(&0.0),
        metrics,
        ..SeedState::default()
    }
}

/// Training losses: a drift towards a level, and now and then a jump the
/// smoothed loss feels exactly as the spike or the warning threshold (aimed with
/// a copy of Tamiyo's own [`LossTrend`]), or as more than either.
#[derive(Debug, Clone)]
struct Losses {
    trend: LossTrend,
    smoothing: f32,
    last: f32,
    /// The smoothed loss after the last step, as Tamiyo's trend has it.
    smoothed: f32,
    spike: f32,
    warn: f32,
}

impl Losses {
    fn new(config: &TamiyoConfig) -> Self {
        let policy = &config.policy;
        Self {
            trend: LossTrend::new(policy.loss_smoothing, policy.trend_window),
            smoothing: policy.loss_smoothing,
            last: 0.3,
            smoothed: 0.3,
            spike: config.risk.loss_spike_pause,
            warn: config.risk.loss_spike_warn,
        }
    }

    /// The loss of `step`. It drifts towards a level that moves every 16 steps
    /// between 0.15 (aimed at the warning, no other jump) and 0.3 (aimed at the
    /// spike, with larger jumps): a change of the smoothed loss is exact in `f32`
    /// (Sterbenz), so it can equal a threshold only where the float spacing of
    /// the smoothed loss divides the threshold — 0.075 from [0.125, 0.25), 0.15
    /// from [0.25, 0.5) — and an aim is tried only from there.
    fn next(&mut self, step: u64, draws: &mut impl Rng) -> f32 {
        let low = (step / 16) % 2 == 0;
        let level = if low { 0.15 } else { 0.3 };
        let loss = match draws.random_range(0..10) {
            0..=4 if low && (0.125..0.175).contains(&self.smoothed) => self.aimed(self.warn),
            0..=4 if !low && (0.25..0.35).contains(&self.smoothed) => self.aimed(self.spike),
            3 if !low => self.last + 1.0,
            4 if !low => self.last + 0.6,
            _ => 0.5 * (self.last + level) + draws.random_range(-0.005..0.005),
        };
        self.smoothed = self.trend.observe(loss).smoothed;
        self.last = loss;
        loss
    }

    /// A loss whose smoothed change is exactly `delta`, searched among the floats
    /// next to the one arithmetic suggests; that one if none is exact (the
    /// smoothing's rounding reaches only some of the smoothed values, so about
    /// a third of the aims miss by a float or two).
    fn aimed(&self, delta: f32) -> f32 {
        let guess = self.smoothed + delta / self.smoothing;
        let mut near =
            (0..400_i32).flat_map(|k| [k, -k]).map(|k| f32::from_bits(guess.to_bits().wrapping_add_signed(k)));
        near.find(|loss| self.trend.clone().observe(*loss).delta == delta).unwrap_or(guess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over the seeds a mutant's run uses, the plan must land the smoothed
    /// loss change exactly on each threshold on some step, else a gate that
    /// compares `>=` for `>` there rules the same on every step.
    #[test]
    fn losses_land_exactly_on_both_loss_thresholds() {
        let config = TamiyoConfig::default();
        let (mut spikes, mut warnings) = (0, 0);
        for seed in 0..16 {
            let plan = Plan::draw(&RngTree::new(seed).child("plan"), &config);
            let mut trend = LossTrend::new(config.policy.loss_smoothing, config.policy.trend_window);
            for (packet, _) in &plan.steps {
                let delta = trend.observe(packet.training_loss).delta;
                spikes += usize::from(delta == config.risk.loss_spike_pause);
                warnings += usize::from(delta == config.risk.loss_spike_warn);
            }
        }
        assert!(spikes >= 16 && warnings >= 16, "{spikes} exact spikes, {warnings} exact warnings over 16 seeds");
    }
}
