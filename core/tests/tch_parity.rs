//! Grafting parity: the libtorch CPU device and the pure-Rust device, given the
//! same parameters, seeds and data, give the same forward output and the same
//! backward gradients (host and seed) within 1e-5, for every blend mode at several
//! alphas, on RC1's `Linear(4 → 2)` and on the MLP host; and they keep agreeing
//! through training, fossilization, culling and snapshots taken on either.
//! Built only with `--features tch` (`ci/test`'s tch step runs it).
#![cfg(feature = "tch")]

use esper_core::tolaria::device::{
    Batch, BlendMode, Dataset, Device, DeviceKind, Gradients, GraftStage, ModelSpec, ModelState, SeedGraft,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The agreement the issue asks of the two devices.
const TOLERANCE: f32 = 1e-5;

/// Alphas each blending seed is checked at (clamping at 1 included).
const ALPHAS: [f32; 4] = [0.0, 0.3, 0.7, 1.0];

fn hosts() -> [(&'static str, ModelSpec); 2] {
    [("rc1", ModelSpec { momentum: 0.9, ..ModelSpec::rc1() }), ("mlp", ModelSpec::mlp())]
}

/// Every blend mode, CHANNEL with one gain per output of `spec`'s slot (one
/// above 1, so its clamp is exercised at high alpha).
fn modes(spec: &ModelSpec) -> Vec<BlendMode> {
    let gains = [0.5, 1.0, 1.5, 2.0].into_iter().cycle().take(spec.slot().outputs).collect();
    vec![BlendMode::Convex, BlendMode::Residual, BlendMode::Channel { gains }, BlendMode::Confidence]
}

fn plan(spec: &ModelSpec, stage: GraftStage, alpha: f32, mode: &BlendMode) -> SeedGraft {
    let slot = spec.slot();
    let (inputs, outputs) = (slot.inputs, slot.outputs);
    SeedGraft { seed_id: "seed-1".into(), inputs, outputs, stage, alpha, mode: mode.clone() }
}

/// Both devices, built from the same seeded initial weights.
fn pair(spec: ModelSpec) -> [Box<dyn Device>; 2] {
    let build = |kind: DeviceKind| kind.build(spec, &mut ChaCha8Rng::seed_from_u64(7)).expect("device");
    [build(DeviceKind::Synthetic), build(DeviceKind::Cpu)]
}

fn data() -> Dataset {
    Dataset::generate(32, 4, 2, &mut ChaCha8Rng::seed_from_u64(42))
}

fn graft_both(devices: &mut [Box<dyn Device>; 2], seeds: &[SeedGraft]) {
    for device in devices {
        let report = device.graft(seeds).expect("graft");
        assert!(report.refused.is_empty(), "{}: {report:?}", device.label());
    }
}

/// Panics, naming `what`, where `left` and `right` differ by more than the tolerance.
fn assert_close(what: &str, left: &[f32], right: &[f32]) {
    assert_eq!(left.len(), right.len(), "{what}: lengths");
    let worst = left
        .iter()
        .zip(right)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0_f32), |worst, (i, d)| if d > worst.1 || d.is_nan() { (i, d) } else { worst });
    assert!(worst.1 <= TOLERANCE, "{what}: entry {} differs by {} ({left:?} vs {right:?})", worst.0, worst.1);
}

fn parameters(state: &ModelState) -> Vec<f32> {
    let mut flat: Vec<f32> = state.weight.iter().chain(&state.bias).copied().collect();
    for layer in state.hidden.iter().chain(state.seeds.iter().map(|seed| &seed.layer)) {
        flat.extend(layer.weight.iter().chain(&layer.bias).chain(&layer.weight_momentum).chain(&layer.bias_momentum));
    }
    flat
}

/// Forward outputs, host and seed gradients, and the parameters agree.
fn assert_parity(case: &str, spec: &ModelSpec, devices: &mut [Box<dyn Device>; 2], batch: &Batch) {
    let [synthetic, torch] = devices;
    let logits = |device: &mut Box<dyn Device>| device.logits(batch).expect("logits");
    assert_close(&format!("{case}: forward"), &logits(synthetic), &logits(torch));
    let (left, right): (Gradients, Gradients) =
        (synthetic.gradients(batch).expect("gradients"), torch.gradients(batch).expect("gradients"));
    assert_eq!(left.host_parameters, right.host_parameters, "{case}: host parameter count");
    assert_close(&format!("{case}: host gradient"), &left.host, &right.host);
    assert_close(&format!("{case}: seed gradient"), &left.seed, &right.seed);
    let state = |device: &dyn Device| {
        ModelState::decode(&device.snapshot().expect("snapshot"), spec).expect("decodes with the same spec")
    };
    let (left, right) = (state(synthetic.as_ref()), state(torch.as_ref()));
    assert_eq!(left.seeds.len(), right.seeds.len(), "{case}: seeds held");
    assert_close(&format!("{case}: parameters"), &parameters(&left), &parameters(&right));
}

/// A few SGD steps on both; each step's loss and gradient norm agree.
fn train_both(case: &str, devices: &mut [Box<dyn Device>; 2], data: &Dataset) {
    for (step, batch) in data.batches(8).enumerate() {
        let [synthetic, torch] = devices;
        let (left, right) = (synthetic.train_step(&batch).expect("step"), torch.train_step(&batch).expect("step"));
        assert_close(&format!("{case}: step {step} loss"), &[left.loss], &[right.loss]);
        assert_close(&format!("{case}: step {step} gradient norm"), &[left.gradient_norm], &[right.gradient_norm]);
    }
}

#[test]
fn forward_and_backward_agree_for_every_blend_mode_alpha_and_host() {
    let data = data();
    let batch = data.batches(8).next().expect("a batch");
    for (host, spec) in hosts() {
        for mode in modes(&spec) {
            let mut devices = pair(spec);
            graft_both(&mut devices, &[plan(&spec, GraftStage::Training, 0.0, &mode)]);
            assert_parity(&format!("{host} {mode:?} TRAINING"), &spec, &mut devices, &batch);
            for alpha in ALPHAS {
                let case = format!("{host} {mode:?} BLENDING α {alpha}");
                graft_both(&mut devices, &[plan(&spec, GraftStage::Blending, alpha, &mode)]);
                assert_parity(&case, &spec, &mut devices, &batch);
            }
        }
    }
}

/// Training moves both devices alike through the seed's whole life: TRAINING,
/// BLENDING, FOSSILIZED (the seed now learns with the host), and a second seed
/// grafted beside the fossil, then culled.
#[test]
fn training_keeps_the_devices_together_through_the_seed_lifecycle() {
    let data = data();
    let batch = data.whole();
    for (host, spec) in hosts() {
        for mode in modes(&spec) {
            let case = |stage: &str| format!("{host} {mode:?} {stage}");
            let mut devices = pair(spec);
            graft_both(&mut devices, &[plan(&spec, GraftStage::Training, 0.0, &mode)]);
            train_both(&case("TRAINING"), &mut devices, &data);
            assert_parity(&case("after TRAINING"), &spec, &mut devices, &batch);
            graft_both(&mut devices, &[plan(&spec, GraftStage::Blending, 0.5, &mode)]);
            train_both(&case("BLENDING"), &mut devices, &data);
            assert_parity(&case("after BLENDING"), &spec, &mut devices, &batch);
            graft_both(&mut devices, &[plan(&spec, GraftStage::Fossilized, 1.0, &mode)]);
            assert_parity(&case("FOSSILIZED"), &spec, &mut devices, &batch);
            train_both(&case("FOSSILIZED"), &mut devices, &data);
            assert_parity(&case("after FOSSILIZED"), &spec, &mut devices, &batch);
            graft_both(&mut devices, &[]);
            assert_parity(&case("fossil kept"), &spec, &mut devices, &batch);
        }
    }
}

/// A seed grafted on one device's snapshot restores on the other, and the
/// restored device computes what the first does; a cull drops the seed and its
/// momentum on both, and a rollback brings them back.
#[test]
fn grafted_snapshots_move_between_devices_and_rollback_restores_seeds() {
    let data = data();
    let batch = data.whole();
    for (host, spec) in hosts() {
        let mode = BlendMode::Residual;
        let mut devices = pair(spec);
        graft_both(&mut devices, &[plan(&spec, GraftStage::Blending, 0.4, &mode)]);
        train_both(host, &mut devices, &data);
        let [synthetic, torch] = &mut devices;
        let from_synthetic = synthetic.snapshot().expect("snapshot");
        torch.restore(&from_synthetic).expect("a synthetic snapshot with a seed restores on libtorch");
        assert_eq!(torch.snapshot().expect("snapshot"), from_synthetic, "{host}: bytes survive the round trip");
        assert_parity(&format!("{host} restored"), &spec, &mut devices, &batch);
        graft_both(&mut devices, &[]);
        for device in &mut devices {
            let state = ModelState::decode(&device.snapshot().expect("snapshot"), &spec).expect("decodes");
            assert!(state.seeds.is_empty(), "{host} {}: culled", device.label());
            device.restore(&from_synthetic).expect("rollback");
            assert_eq!(device.snapshot().expect("snapshot"), from_synthetic, "{host}: rollback brings the seed back");
        }
        train_both(&format!("{host} after rollback"), &mut devices, &data);
        assert_parity(&format!("{host} after rollback"), &spec, &mut devices, &batch);
    }
}

/// Isolation on libtorch's own gradients: with a live seed in any mode, the seed
/// pass reaches no host parameter, the host's gradient is bit for bit the one
/// without the seed, and Kasmina's check on this device reads no overlap.
#[test]
fn kasmina_reads_no_leak_from_libtorch_gradients_with_a_live_seed() {
    use esper_core::kasmina::{KasminaConfig, SeedManager};
    use esper_core::leyline::{AdaptationCommand, CommandPayload, CommandSeedOperation, CommandType, SeedOperation};

    let germinate = AdaptationCommand {
        command_type: CommandType::Seed.into(),
        target_seed_id: "seed-1".into(),
        payload: Some(CommandPayload::SeedOperation(CommandSeedOperation {
            operation: SeedOperation::Germinate.into(),
            blueprint_id: "BP002".into(),
            parameters: Default::default(),
        })),
        ..AdaptationCommand::default()
    };
    let batch = data().whole();
    for (host, spec) in hosts() {
        for mode in modes(&spec) {
            let [_, mut torch] = pair(spec);
            let alone = torch.gradients(&batch).expect("gradients");
            let report = torch.graft(&[plan(&spec, GraftStage::Blending, 0.6, &mode)]).expect("graft");
            assert_eq!(report.attached.len(), 1, "{host} {mode:?}: {report:?}");
            let grafted = torch.gradients(&batch).expect("gradients");
            let count = grafted.host_parameters;
            assert_eq!(grafted.host[..count], alone.host[..], "{host} {mode:?}: the host learns as alone");
            assert!(grafted.seed[..count].iter().all(|g| *g == 0.0), "{host} {mode:?}: seed reached the host");
            assert!(grafted.seed[count..].iter().any(|g| *g != 0.0), "{host} {mode:?}: the seed learns");
            let mut kasmina = SeedManager::new(KasminaConfig::default());
            kasmina.apply(&germinate).expect("germinates");
            let overlap = kasmina.check_isolation_on(torch.as_ref(), "seed-1", &grafted.host, &grafted.seed);
            assert_eq!(overlap, Ok(0.0), "{host} {mode:?}");
            assert_eq!(kasmina.counters().isolation_violations, 0, "{host} {mode:?}");
        }
    }
}
