//! Steady-train epoch latency on a device: the RC1 workload (Linear 4→2, SGD 0.01,
//! 64 samples; batch 4 as the CPU baseline, 16 as the GPU one: 64 / batch optimizer
//! steps and one evaluation per epoch), on the pure-Rust device and on `--device`.
//!
//! `ci/bench/compare` runs this and, in the same go, PyTorch eager on the same device,
//! data, initial parameters and batch size (`ci/bench/pytorch_steady_train.py`, fed by
//! `--dump FILE`), then prints the ratio. The final losses are printed too: they must
//! agree.
//!
//! With `--blending-seed`, each device first grafts one seed into the host's slot
//! (RC1's `head`: a `Linear(4 → 2)` kernel), BLENDING, CONVEX at α 0.5: every step
//! then runs the host pass, the seed pass (host detached) and the served pass, and
//! the dump carries the seed's initial weights so PyTorch does the same blend.
//!
//! `cargo bench -p esper-core --features tch --bench device_epoch -- [--device cpu|cuda[:N]]
//! [--batch-size B] [--epochs N] [--dump FILE] [--blending-seed]`

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall-clock time")]

use std::time::Instant;

use esper_core::tolaria::device::{
    BlendMode, Dataset, Device, DeviceKind, GraftStage, ModelSpec, ModelState, SeedGraft, Synthetic,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let epochs: usize = value("--epochs").and_then(|v| v.parse().ok()).unwrap_or(300);
    let batch_size: usize = value("--batch-size").and_then(|v| v.parse().ok()).filter(|&b| b > 0).unwrap_or(4);
    let device: DeviceKind = match value("--device").unwrap_or_else(|| "cpu".to_owned()).parse() {
        Ok(kind) => kind,
        Err(error) => {
            eprintln!("device_epoch: {error}");
            std::process::exit(2);
        }
    };
    let spec = ModelSpec::rc1();
    let slot = spec.slot();
    let seed = args.iter().any(|a| a == "--blending-seed").then(|| SeedGraft {
        seed_id: "seed-1".to_owned(),
        inputs: slot.inputs,
        outputs: slot.outputs,
        stage: GraftStage::Blending,
        alpha: SEED_ALPHA,
        mode: BlendMode::Convex,
    });
    let data = Dataset::generate(64, spec.features, spec.classes, &mut ChaCha8Rng::seed_from_u64(42));
    if let Some(path) = value("--dump") {
        let initial = ModelState::initial(&spec, &mut ChaCha8Rng::seed_from_u64(7));
        let whole = data.whole();
        let mut json = serde_json::json!({
            "features": spec.features, "classes": spec.classes, "learning_rate": spec.learning_rate,
            "momentum": spec.momentum, "batch_size": batch_size, "inputs": whole.inputs,
            "targets": whole.targets, "weight": initial.weight, "bias": initial.bias,
        });
        if let Some(plan) = &seed {
            // The weights a graft gives the seed: the same on every device at step 0.
            let mut grafted = Synthetic::new(spec, &mut ChaCha8Rng::seed_from_u64(7));
            grafted.graft(std::slice::from_ref(plan)).expect("the seed fits the slot");
            let layer = &grafted.state().seeds[0].layer;
            json["seed"] = serde_json::json!({ "weight": layer.weight, "bias": layer.bias, "alpha": SEED_ALPHA });
        }
        std::fs::write(&path, json.to_string()).expect("writable dump path");
    }
    for kind in [DeviceKind::Synthetic, device] {
        let mut built = match kind.build(spec, &mut ChaCha8Rng::seed_from_u64(7)) {
            Ok(built) => built,
            Err(error) => {
                eprintln!("device_epoch: {error}");
                std::process::exit(1);
            }
        };
        let mut label = kind.to_string();
        if let Some(plan) = &seed {
            let report = built.graft(std::slice::from_ref(plan)).expect("graft");
            assert!(report.refused.is_empty(), "{report:?}");
            label.push_str("+seed");
        }
        let (times, loss) = run(built.as_mut(), &data, batch_size, epochs);
        report(&label, &times, loss);
    }
}

/// The blending seed's alpha, constant through the run.
const SEED_ALPHA: f32 = 0.5;

fn run(device: &mut dyn Device, data: &Dataset, batch_size: usize, epochs: usize) -> (Vec<f64>, f32) {
    let whole = data.whole();
    let mut times = Vec::with_capacity(epochs);
    let mut loss = f32::NAN;
    for _ in 0..epochs {
        let started = Instant::now();
        for batch in data.batches(batch_size) {
            device.train_step(&batch).expect("train step");
        }
        loss = device.evaluate(&whole).expect("evaluate").loss;
        times.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    (times, loss)
}

fn report(label: &str, times: &[f64], loss: f32) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    let p95 = sorted[((sorted.len() - 1) as f64 * 0.95) as usize];
    println!(
        "epoch_ms {label:<10} mean {mean:.4} p50 {:.4} p95 {p95:.4} final_loss {loss:.6}",
        sorted[sorted.len() / 2]
    );
}
