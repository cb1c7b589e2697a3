//! Morphogenesis changes the model, and for the better: the `morphogenesis`
//! scenario, under its own schedule, over seeds 0..20, fossilizes a seed on every
//! seed, and every run ends with a loss at most `1 − MARGIN_FRACTION` of the same
//! host trained alone's; and fossilizing a fully blended seed leaves the model's
//! output what it was at alpha 1.
//!
//! Figures (seeds 0..20): all 20 fossilize. The closest wins are seed 6 (0.0525
//! against 0.0684, 23 % below) and seed 7 (0.1570 against 0.2080, 25 % below);
//! the median grafted loss is about a fifth of the host alone's. Beyond the
//! tested range, seeds 0..60 all fossilize too, and one of them (seed 25) ends
//! level with the host alone (0.1243 against 0.1239): a margin holds per seed,
//! not for every seed there is.
//!
//! `cargo nextest run --test morphogenesis`.

use esper_core::tolaria::device::{Batch, BlendMode, Dataset, Device, GraftStage, ModelSpec, SeedGraft, Synthetic};
use esper_scenarios::registry;
use esper_scenarios::sim::control_loop::morphogenesis::{SAMPLES, concentric};
use esper_sim::{RngTree, TraceMode, World};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SEEDS: std::ops::Range<u64> = 0..20;
/// How far below the host alone's loss the grafted model's must end, on every
/// seed, as a fraction of the host alone's: 10 %. The closest seed wins by 23 %,
/// so the bar has more than twice its height in room; and a seed that grafted
/// but changed nothing (a model that merely matched the host) fails it, where a
/// bare "below" could pass on evaluation noise.
const MARGIN_FRACTION: f64 = 0.10;

#[test]
fn grafting_ends_below_the_host_alone_by_the_margin_on_every_seed() {
    let scenario = registry::find("morphogenesis").expect("registered");
    let mut short = Vec::new();
    for seed in SEEDS {
        let schedule = scenario.schedule(&RngTree::new(seed).child("faults"));
        let mut world = World::with_config(seed, schedule, &scenario.world_config());
        scenario.populate(&mut world);
        let report = world.run(scenario.name(), TraceMode::Hash);
        assert!(report.outcome.invariant().is_none(), "seed {seed}: {report}");
        let count = |name: &str| report.tally.get(&format!("morphogenesis.{name}")).copied().unwrap_or_default();
        let (grafted, host_only) = (count("loss_ppm.grafted") as f64 / 1e6, count("loss_ppm.host_only") as f64 / 1e6);
        let fossilized = count("fossilized");
        println!(
            "seed {seed}: grafted {grafted:.4}, host alone {host_only:.4} ({:.0} % below), fossilized {fossilized}, \
             rollbacks with a seed {}",
            100.0 * (1.0 - grafted / host_only),
            count("rollbacks_with_seed")
        );
        if fossilized == 0 || grafted > (1.0 - MARGIN_FRACTION) * host_only {
            short.push(format!(
                "seed {seed}: fossilized {fossilized}, grafted {grafted:.4} vs host alone {host_only:.4}"
            ));
        }
    }
    assert!(short.is_empty(), "no seed grown, or grafting not {MARGIN_FRACTION} below the host alone: {short:?}");
}

/// Softmax probabilities of every sample, read through `evaluate` on one-sample
/// batches (the loss against class `c` is `-ln p_c`).
fn probabilities(model: &mut Synthetic, data: &Dataset) -> Vec<f64> {
    let whole = data.whole();
    let mut out = Vec::new();
    for sample in whole.inputs.chunks_exact(4) {
        for class in 0..2 {
            let batch = Batch { inputs: sample.to_vec(), targets: vec![class] };
            out.push(f64::from(-model.evaluate(&batch).expect("evaluate").loss).exp());
        }
    }
    out
}

fn plan(stage: GraftStage, alpha: f32) -> SeedGraft {
    SeedGraft { seed_id: "seed-1".into(), inputs: 4, outputs: 4, stage, alpha, mode: BlendMode::Residual }
}

#[test]
fn the_fossilized_output_equals_the_blended_output_at_alpha_one() {
    for seed in SEEDS {
        let data = concentric(SAMPLES, &mut ChaCha8Rng::seed_from_u64(seed)).expect("data");
        let mut model = Synthetic::new(ModelSpec::mlp(), &mut ChaCha8Rng::seed_from_u64(seed));
        let train = |model: &mut Synthetic| {
            for batch in data.batches(4) {
                model.train_step(&batch).expect("step");
            }
        };
        train(&mut model);
        assert!(model.graft(&[plan(GraftStage::Training, 0.0)]).expect("graft").refused.is_empty());
        train(&mut model);
        model.graft(&[plan(GraftStage::Blending, 1.0)]).expect("blend");
        let blended = probabilities(&mut model, &data);
        model.graft(&[plan(GraftStage::Fossilized, 1.0)]).expect("fossilize");
        let fossil = probabilities(&mut model, &data);
        let drift = blended.iter().zip(&fossil).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(drift <= 1e-6, "seed {seed}: fossilization moved the output by {drift}");
        let mut host = Synthetic::new(ModelSpec::mlp(), &mut ChaCha8Rng::seed_from_u64(seed));
        for _ in 0..2 {
            train(&mut host);
        }
        assert!(probabilities(&mut host, &data) != fossil, "seed {seed}: the fossil changed nothing");
    }
}
