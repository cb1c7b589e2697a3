//! Seeds grafted into the synthetic device: each test names the property and can
//! fail on a plausible bug (a blend that leaks gradient into the host, a
//! fossilization that changes the output, a rollback that forgets seed weights).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::kasmina::{KasminaConfig, SeedManager};
use crate::tolaria::device::graft::BlendMode;
use crate::tolaria::device::{Dataset, GraftStage, SeedGraft};

fn mlp(seed: u64) -> (Synthetic, Dataset) {
    let data = Dataset::generate(32, 4, 2, &mut ChaCha8Rng::seed_from_u64(42));
    (Synthetic::new(ModelSpec::mlp(), &mut ChaCha8Rng::seed_from_u64(seed)), data)
}

fn plan(id: &str, stage: GraftStage, alpha: f32, mode: BlendMode) -> SeedGraft {
    SeedGraft { seed_id: id.into(), inputs: 4, outputs: 4, stage, alpha, mode }
}

fn modes() -> [BlendMode; 4] {
    [
        BlendMode::Convex,
        BlendMode::Residual,
        BlendMode::Channel { gains: vec![0.5, 1.0, 1.5, 2.0] },
        BlendMode::Confidence,
    ]
}

fn grafted(model: &mut Synthetic, seeds: &[SeedGraft]) {
    let report = model.graft(seeds).expect("graft");
    assert!(report.refused.is_empty(), "{report:?}");
}

fn served_logits(model: &Synthetic, data: &Dataset) -> Vec<f32> {
    let whole = data.whole();
    let samples = whole.inputs.chunks_exact(4);
    samples.flat_map(|x| pass::forward(&model.spec, &model.state, Pass::Served, x).logits).collect()
}

fn train(model: &mut Synthetic, data: &Dataset, epochs: usize) {
    for _ in 0..epochs {
        for batch in data.batches(4) {
            model.train_step(&batch).expect("step");
        }
    }
}

#[test]
fn a_seed_at_alpha_zero_leaves_the_host_output_unchanged() {
    let (mut model, data) = mlp(7);
    train(&mut model, &data, 1);
    let host = served_logits(&model, &data);
    for mode in modes() {
        for (stage, alpha) in [(GraftStage::Training, 0.7), (GraftStage::Blending, 0.0)] {
            grafted(&mut model, &[plan("seed-1", stage, alpha, mode.clone())]);
            assert_eq!(served_logits(&model, &data), host, "{mode:?} {stage:?}");
            grafted(&mut model, &[]);
        }
    }
    grafted(&mut model, &[plan("seed-1", GraftStage::Blending, 0.5, BlendMode::Convex)]);
    assert_ne!(served_logits(&model, &data), host, "a blending seed changes the output");
}

/// While a seed is live the host learns exactly what it learns without it.
#[test]
fn the_host_learns_the_same_with_a_live_seed_as_without() {
    for mode in modes() {
        let (mut with_seed, data) = mlp(3);
        let mut without = with_seed.clone();
        grafted(&mut with_seed, &[plan("seed-1", GraftStage::Blending, 0.6, mode.clone())]);
        let batch = data.batches(8).next().expect("a batch");
        let (gradients, plain) = (with_seed.gradients(&batch).expect("g"), without.gradients(&batch).expect("g"));
        let host = gradients.host_parameters;
        assert_eq!(gradients.host[..host], plain.host[..], "{mode:?}");
        assert!(gradients.seed[..host].iter().all(|g| *g == 0.0), "{mode:?}: the seed pass reached the host");
        assert!(gradients.seed[host..].iter().any(|g| *g != 0.0), "{mode:?}: the seed learns");
        train(&mut with_seed, &data, 2);
        train(&mut without, &data, 2);
        let (a, b) = (with_seed.state(), without.state());
        assert_eq!((&a.weight, &a.bias, &a.hidden), (&b.weight, &b.bias, &b.hidden), "{mode:?}");
    }
}

/// The detach removed (a planted leak): the seed's gradient reaches host
/// parameters, Kasmina's overlap check records a violation, and the host no
/// longer learns what it learns alone.
#[test]
fn a_blend_that_leaks_gradient_into_the_host_is_caught() {
    let (mut leaky, data) = mlp(3);
    let mut alone = leaky.clone();
    leaky.host_detached = false;
    grafted(&mut leaky, &[plan("seed-1", GraftStage::Blending, 0.6, BlendMode::Convex)]);
    let batch = data.batches(8).next().expect("a batch");
    let gradients = leaky.gradients(&batch).expect("gradients");
    let mut kasmina = SeedManager::new(KasminaConfig::default());
    let germinate = crate::leyline::AdaptationCommand {
        command_type: crate::leyline::CommandType::Seed.into(),
        target_seed_id: "seed-1".into(),
        payload: Some(crate::leyline::CommandPayload::SeedOperation(crate::leyline::CommandSeedOperation {
            operation: crate::leyline::SeedOperation::Germinate.into(),
            blueprint_id: "BP002".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    kasmina.apply(&germinate).expect("germinated");
    let overlap = kasmina.check_isolation_on(&leaky, "seed-1", &gradients.host, &gradients.seed).expect("checked");
    assert!(overlap > 0.0 && kasmina.counters().isolation_violations == 1, "overlap {overlap}");
    train(&mut leaky, &data, 1);
    train(&mut alone, &data, 1);
    assert_ne!(leaky.state().hidden, alone.state().hidden, "the leak moved the host");
}

/// Fossilizing a fully blended seed folds it into the host: the output is the
/// blended output at alpha 1, and from then on the seed learns with the host.
#[test]
fn fossilization_keeps_the_blended_output_at_alpha_one() {
    for mode in modes() {
        let (mut model, data) = mlp(11);
        grafted(&mut model, &[plan("seed-1", GraftStage::Training, 0.0, mode.clone())]);
        train(&mut model, &data, 1);
        grafted(&mut model, &[plan("seed-1", GraftStage::Blending, 1.0, mode.clone())]);
        let blended = served_logits(&model, &data);
        grafted(&mut model, &[plan("seed-1", GraftStage::Fossilized, 1.0, mode.clone())]);
        let fossil = served_logits(&model, &data);
        let drift = blended.iter().zip(&fossil).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(drift <= 1e-6, "{mode:?}: fossilization moved the output by {drift}");
        grafted(&mut model, &[]);
        assert_eq!(served_logits(&model, &data), fossil, "{mode:?}: a fossil is for good");
        let host = model.state().host_parameter_count();
        let gradients = model.gradients(&data.whole()).expect("gradients");
        assert_eq!(host, gradients.host.len(), "the fossil's parameters are host parameters");
    }
}

#[test]
fn culling_drops_the_seed_and_its_optimizer_state() {
    let (mut model, data) = mlp(5);
    let host = served_logits(&model, &data);
    grafted(&mut model, &[plan("seed-1", GraftStage::Blending, 0.5, BlendMode::Convex)]);
    let fresh = model.state().seeds[0].clone();
    train(&mut model, &data, 1);
    assert!(model.state().seeds[0].layer.weight_momentum.iter().any(|m| *m != 0.0));
    let report = model.graft(&[]).expect("cull");
    assert_eq!((report.dropped, model.state().seeds.len()), (vec!["seed-1".to_owned()], 0));
    assert_ne!(served_logits(&model, &data), host, "the host trained meanwhile");
    let mut reference = Synthetic::new(ModelSpec::mlp(), &mut ChaCha8Rng::seed_from_u64(5));
    train(&mut reference, &data, 1);
    assert_eq!(served_logits(&model, &data), served_logits(&reference, &data), "nothing of the seed is left");
    grafted(&mut model, &[plan("seed-1", GraftStage::Training, 0.0, BlendMode::Convex)]);
    assert!(model.state().seeds[0].layer.weight_momentum.iter().all(|m| *m == 0.0));
    assert_ne!(model.state().seeds[0].layer.weight, fresh.layer.weight, "a re-graft starts afresh");
}

#[test]
fn rollback_restores_the_seed_weights_and_their_momentum() {
    let (mut model, data) = mlp(9);
    grafted(&mut model, &[plan("seed-1", GraftStage::Training, 0.0, BlendMode::Residual)]);
    train(&mut model, &data, 1);
    let snapshot = model.snapshot().expect("snapshot");
    let before = model.state().clone();
    grafted(&mut model, &[plan("seed-1", GraftStage::Blending, 0.3, BlendMode::Residual)]);
    train(&mut model, &data, 1);
    assert_ne!(model.state().seeds, before.seeds);
    model.restore(&snapshot).expect("restore");
    assert_eq!(model.state(), &before);
    grafted(&mut model, &[]);
    model.restore(&snapshot).expect("restore after a cull");
    assert_eq!(model.state().seeds, before.seeds, "a rollback brings a culled seed back");
}

#[test]
fn seeds_change_the_model_and_differ_by_id_and_run() {
    let (mut model, data) = mlp(1);
    let plain = model.snapshot().expect("snapshot");
    grafted(&mut model, &[plan("seed-1", GraftStage::Training, 0.0, BlendMode::Convex)]);
    assert_ne!(model.snapshot().expect("snapshot"), plain, "a grafted seed is in the snapshot");
    let (mut other_id, _) = mlp(1);
    grafted(&mut other_id, &[plan("seed-2", GraftStage::Training, 0.0, BlendMode::Convex)]);
    let (mut other_run, _) = mlp(2);
    grafted(&mut other_run, &[plan("seed-1", GraftStage::Training, 0.0, BlendMode::Convex)]);
    let weights = |m: &Synthetic| m.state().seeds[0].layer.weight.clone();
    assert_ne!(weights(&model), weights(&other_id));
    assert_ne!(weights(&model), weights(&other_run));
    let (mut again, _) = mlp(1);
    grafted(&mut again, &[plan("seed-1", GraftStage::Training, 0.0, BlendMode::Convex)]);
    assert_eq!(weights(&model), weights(&again), "the same run grafts the same weights");
    grafted(&mut model, &[plan("seed-1", GraftStage::Blending, 1.0, BlendMode::Convex)]);
    let mut host_only = Synthetic::new(ModelSpec::mlp(), &mut ChaCha8Rng::seed_from_u64(1));
    train(&mut model, &data, 1);
    train(&mut host_only, &data, 1);
    let (grafted_loss, host_loss) = (model.evaluate(&data.whole()), host_only.evaluate(&data.whole()));
    assert_ne!(grafted_loss.expect("eval").loss, host_loss.expect("eval").loss);
}

#[test]
fn a_kernel_that_does_not_fit_or_a_second_live_seed_is_refused() {
    let (mut model, _) = mlp(1);
    let wrong = SeedGraft { inputs: 8, outputs: 2, ..plan("seed-1", GraftStage::Training, 0.0, BlendMode::Convex) };
    let report = model.graft(&[wrong]).expect("graft");
    assert!(report.refused[0].1.contains("8→2 kernel does not fit slot `hidden` (4→4)"), "{report:?}");
    let two = [
        plan("seed-1", GraftStage::Training, 0.0, BlendMode::Convex),
        plan("seed-2", GraftStage::Training, 0.0, BlendMode::Convex),
    ];
    let report = model.graft(&two).expect("graft");
    assert_eq!(report.attached, vec![("seed-1".to_owned(), "hidden")]);
    assert!(report.refused[0].1.contains("holds live seed `seed-1`"), "{report:?}");
    let short_gains = plan("seed-3", GraftStage::Training, 0.0, BlendMode::Channel { gains: vec![1.0] });
    assert!(model.graft(&[short_gains]).expect("graft").refused[0].1.contains("1 gains for 4 outputs"));
    let (mut rc1, _) = (Synthetic::new(ModelSpec::rc1(), &mut ChaCha8Rng::seed_from_u64(1)), ());
    let identity = SeedGraft { outputs: 2, ..plan("seed-1", GraftStage::Training, 0.0, BlendMode::Convex) };
    assert_eq!(rc1.graft(&[identity]).expect("graft").attached, vec![("seed-1".to_owned(), "head")]);
}

/// The analytic gradients of the host pass and the seed pass match central
/// finite differences of their losses, for every blend mode but CONFIDENCE
/// (whose gate is held constant in the backward pass by design).
#[test]
fn host_and_seed_gradients_match_finite_differences() {
    for mode in [BlendMode::Convex, BlendMode::Residual, BlendMode::Channel { gains: vec![0.5, 1.0, 1.5, 2.0] }] {
        let (mut model, data) = mlp(13);
        grafted(&mut model, &[plan("seed-1", GraftStage::Blending, 0.4, mode.clone())]);
        let batch = data.batches(8).next().expect("a batch");
        let gradients = model.gradients(&batch).expect("gradients");
        let loss_of = |probe: &Synthetic, which: Pass| {
            let samples = batch.inputs.chunks_exact(4).zip(&batch.targets);
            let total: f32 = samples
                .map(|(x, &t)| {
                    pass::softmax_loss(&pass::forward(&probe.spec, &probe.state, which, x).logits, t as usize).1
                })
                .sum();
            total / batch.len() as f32
        };
        let nudged = |index: usize, delta: f32| {
            let mut probe = model.clone();
            let layers =
                [&mut probe.state.hidden.as_mut().expect("mlp").weight, &mut probe.state.seeds[0].layer.weight];
            let (layer, at) = if index < 16 { (0, index) } else { (1, index - 16) };
            *layers.into_iter().nth(layer).expect("layer").get_mut(at).expect("weight") += delta;
            probe
        };
        let (hidden_at, seed_at) = (2 * 4 + 2, 2 * 4 + 2 + 16 + 4);
        for index in 0..32 {
            let (which, analytic) = if index < 16 {
                (Pass::Host, gradients.host[hidden_at + index])
            } else {
                (Pass::Seed, gradients.seed[seed_at + index - 16])
            };
            let numeric = (loss_of(&nudged(index, 1e-2), which) - loss_of(&nudged(index, -1e-2), which)) / 2e-2;
            assert!((numeric - analytic).abs() < 2e-3, "{mode:?} weight {index}: {numeric} vs {analytic}");
        }
    }
}
