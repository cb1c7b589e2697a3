//! The libtorch device on CUDA against itself and against libtorch on the CPU: what
//! must be bit-exact (a rerun with the same seed on the same GPU) and what can only
//! agree to a tolerance (CUDA against the CPU); see `core/src/tolaria/device/cuda.rs`.
//!
//! Part of the nextest profile `gpu` that `ci/gpu-profile` archives and a GPU runner
//! runs. Without CUDA each test says why and skips (`support::cuda_or_skip`).
//! Built only with `--features tch`.
#![cfg(feature = "tch")]

mod support;

use esper_core::tolaria::device::{Dataset, Device, DeviceKind, ModelSpec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use support::cuda_or_skip;

const CUDA: DeviceKind = DeviceKind::Cuda(0);

/// Momentum on, so the optimizer state takes part in every comparison.
fn build(kind: DeviceKind, seed: u64) -> Box<dyn Device> {
    kind.build(ModelSpec { momentum: 0.9, ..ModelSpec::rc1() }, &mut ChaCha8Rng::seed_from_u64(seed)).expect("device")
}

fn data() -> Dataset {
    Dataset::generate(64, 4, 2, &mut ChaCha8Rng::seed_from_u64(42))
}

/// Every number `epochs` epochs at `batch_size` produce, in order: each step's loss
/// and gradient norm, then the epoch's evaluation loss and accuracy.
fn trace(device: &mut dyn Device, batch_size: usize, epochs: usize) -> Vec<f32> {
    let data = data();
    let mut values = Vec::new();
    for _ in 0..epochs {
        for batch in data.batches(batch_size) {
            let step = device.train_step(&batch).expect("train step");
            values.extend([step.loss, step.gradient_norm]);
        }
        let evaluation = device.evaluate(&data.whole()).expect("evaluate");
        values.extend([evaluation.loss, evaluation.accuracy]);
    }
    values
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|value| value.to_bits()).collect()
}

#[test]
fn cuda_reruns_with_the_same_seed_are_bit_identical() {
    if !cuda_or_skip("cuda_reruns_with_the_same_seed_are_bit_identical") {
        return;
    }
    for batch_size in [4, 16] {
        let first = trace(build(CUDA, 7).as_mut(), batch_size, 5);
        let again = trace(build(CUDA, 7).as_mut(), batch_size, 5);
        assert_eq!(bits(&first), bits(&again), "batch {batch_size}: same seed, same GPU, another loss sequence");
        let other = trace(build(CUDA, 8).as_mut(), batch_size, 5);
        assert_ne!(bits(&first), bits(&other), "batch {batch_size}: another seed must start elsewhere");
    }
}

#[test]
fn cuda_agrees_with_libtorch_cpu_to_a_tolerance() {
    if !cuda_or_skip("cuda_agrees_with_libtorch_cpu_to_a_tolerance") {
        return;
    }
    // Not bit-exact: the GPU sums in another order and fuses multiply-adds. Over 5
    // epochs of this model the drift stays orders of magnitude below 1e-4.
    let (cpu, cuda) = (trace(build(DeviceKind::Cpu, 7).as_mut(), 16, 5), trace(build(CUDA, 7).as_mut(), 16, 5));
    assert_eq!(cpu.len(), cuda.len());
    for (index, (left, right)) in cpu.iter().zip(&cuda).enumerate() {
        assert!((left - right).abs() <= 1e-4 * left.abs().max(1.0), "value {index}: cpu {left} vs cuda {right}");
    }
    let evaluation_losses: Vec<f32> = cuda.chunks(2 * 4 + 2).map(|epoch| epoch[8]).collect();
    assert!(evaluation_losses[4] < evaluation_losses[0], "the loss must fall on CUDA: {evaluation_losses:?}");
}

#[test]
fn cuda_warm_up_leaves_the_initial_model_untouched() {
    if !cuda_or_skip("cuda_warm_up_leaves_the_initial_model_untouched") {
        return;
    }
    // Building a CUDA device runs one throwaway step; the model it hands over must be
    // the seeded initial one, byte for byte.
    assert_eq!(build(CUDA, 7).snapshot().expect("snapshot"), build(DeviceKind::Cpu, 7).snapshot().expect("snapshot"));
}

#[test]
fn cuda_snapshots_restore_exactly_and_move_to_and_from_the_cpu() {
    if !cuda_or_skip("cuda_snapshots_restore_exactly_and_move_to_and_from_the_cpu") {
        return;
    }
    let whole = data().whole();
    let mut cuda = build(CUDA, 7);
    let start = cuda.snapshot().expect("snapshot");
    trace(cuda.as_mut(), 16, 2);
    cuda.restore(&start).expect("restore");
    assert_eq!(cuda.snapshot().expect("snapshot"), start, "restore must bring back the exact bytes");

    let mut cpu = build(DeviceKind::Cpu, 9);
    trace(cpu.as_mut(), 16, 2);
    cuda.restore(&cpu.snapshot().expect("snapshot")).expect("CPU snapshot restores on CUDA");
    assert_eq!(cuda.snapshot().expect("snapshot"), cpu.snapshot().expect("snapshot"));
    let (on_cuda, on_cpu) = (cuda.evaluate(&whole).expect("eval"), cpu.evaluate(&whole).expect("eval"));
    assert!(
        (on_cuda.loss - on_cpu.loss).abs() < 1e-6 && on_cuda.accuracy == on_cpu.accuracy,
        "{on_cuda:?} vs {on_cpu:?}"
    );
}
