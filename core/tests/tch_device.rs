//! libtorch CPU against the pure-Rust device, on the same data and initial weights.
//! Built only with `--features tch` (`ci/test` sets libtorch up and runs these).
#![cfg(feature = "tch")]

use esper_core::tolaria::device::{Dataset, Device, DeviceKind, ModelSpec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn build(kind: DeviceKind) -> Box<dyn Device> {
    kind.build(ModelSpec { momentum: 0.9, ..ModelSpec::rc1() }, &mut ChaCha8Rng::seed_from_u64(7)).expect("device")
}

fn data() -> Dataset {
    Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42))
}

/// Trains 3 epochs at batch 4; returns per-epoch (loss, accuracy) on the whole set.
fn train(device: &mut dyn Device, data: &Dataset) -> Vec<(f32, f32)> {
    (0..3)
        .map(|_| {
            for batch in data.batches(4) {
                device.train_step(&batch).expect("train step");
            }
            let evaluation = device.evaluate(&data.whole()).expect("evaluate");
            (evaluation.loss, evaluation.accuracy)
        })
        .collect()
}

#[test]
fn tch_cpu_and_synthetic_reach_the_same_accuracy_band() {
    let data = data();
    let synthetic = train(build(DeviceKind::Synthetic).as_mut(), &data);
    let torch = train(build(DeviceKind::Cpu).as_mut(), &data);
    for ((synthetic_loss, synthetic_accuracy), (torch_loss, torch_accuracy)) in synthetic.iter().zip(&torch) {
        assert!((synthetic_loss - torch_loss).abs() < 1e-4, "loss {synthetic_loss} vs {torch_loss}");
        assert!((synthetic_accuracy - torch_accuracy).abs() <= 1.0 / 64.0, "{synthetic_accuracy} vs {torch_accuracy}");
    }
    assert!(torch[2].0 < torch[0].0, "libtorch loss must fall: {torch:?}");
}

#[test]
fn tch_cpu_reruns_are_bit_identical() {
    let data = data();
    let bits = |run: Vec<(f32, f32)>| run.iter().map(|(loss, _)| loss.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(train(build(DeviceKind::Cpu).as_mut(), &data)),
        bits(train(build(DeviceKind::Cpu).as_mut(), &data))
    );
}

#[test]
fn snapshots_restore_exactly_and_move_between_devices() {
    let data = data();
    let mut torch = build(DeviceKind::Cpu);
    let snapshot = torch.snapshot().expect("snapshot");
    train(torch.as_mut(), &data);
    torch.restore(&snapshot).expect("restore");
    assert_eq!(torch.snapshot().expect("snapshot"), snapshot, "restore must bring back the exact bytes");

    let mut synthetic = build(DeviceKind::Synthetic);
    train(synthetic.as_mut(), &data);
    torch.restore(&synthetic.snapshot().expect("snapshot")).expect("cross-device restore");
    assert_eq!(torch.snapshot().expect("snapshot"), synthetic.snapshot().expect("snapshot"));
    let (left, right) =
        (torch.evaluate(&data.whole()).expect("eval"), synthetic.evaluate(&data.whole()).expect("eval"));
    assert!((left.loss - right.loss).abs() < 1e-6 && left.accuracy == right.accuracy, "{left:?} vs {right:?}");
}
