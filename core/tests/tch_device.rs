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

/// Host and seed gradients over 4096 parameters: the host's on the first half, the
/// seed's on the second, drawn from a seed; `leak` seed entries also land on host ones.
fn gradients(leak: usize) -> (Vec<f32>, Vec<f32>) {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 4096;
    let mut host = vec![0.0_f32; n];
    let mut seed = vec![0.0_f32; n];
    for i in 0..n / 2 {
        host[i] = rng.random_range(-1.0..1.0);
        seed[n / 2 + i] = rng.random_range(-1e-3..1e-3);
    }
    for i in 0..leak {
        seed[i * 7] = rng.random_range(1e-6..1e-5);
    }
    (host, seed)
}

#[test]
fn gradient_overlap_on_libtorch_equals_the_pure_rust_sum_and_catches_a_leak() {
    use esper_core::kasmina::isolation::gradient_overlap;
    use esper_core::kasmina::{KasminaConfig, KasminaError, SeedManager};
    use esper_core::leyline::{AdaptationCommand, CommandPayload, CommandSeedOperation, CommandType, SeedOperation};

    let synthetic = build(DeviceKind::Synthetic);
    let mut devices = vec![build(DeviceKind::Cpu)];
    if esper_core::tolaria::device::cuda_device_count().unwrap_or(0) > 0 {
        devices.push(build(DeviceKind::Cuda(0)));
    }
    let germinate = AdaptationCommand {
        command_type: CommandType::Seed.into(),
        target_seed_id: "seed-1".into(),
        payload: Some(CommandPayload::SeedOperation(CommandSeedOperation {
            operation: SeedOperation::Germinate.into(),
            blueprint_id: "BP001".into(),
            parameters: Default::default(),
        })),
        ..AdaptationCommand::default()
    };
    for torch in &devices {
        let label = torch.label();
        let (host, clean) = gradients(0);
        assert_eq!(torch.gradient_overlap(&host, &clean).expect("overlap"), 0.0, "{label}: disjoint supports");
        let (host, leaky) = gradients(5);
        let expected = gradient_overlap(&host, &leaky);
        assert!(expected > 0.0);
        for device in [torch.as_ref(), synthetic.as_ref()] {
            let overlap = device.gradient_overlap(&host, &leaky).expect("overlap");
            assert!((overlap - expected).abs() <= 1e-6 * expected, "{}: {overlap} vs {expected}", device.label());
        }
        let mismatch = torch.gradient_overlap(&host, &leaky[1..]).expect_err("lengths differ");
        assert!(mismatch.to_string().contains("4096 values and seed gradient 4095"), "{mismatch}");

        // Kasmina's check through the libtorch path: clean passes, the leak is counted,
        // and in strict mode it is an error.
        for strict in [false, true] {
            let mut manager = SeedManager::new(KasminaConfig { strict_isolation: strict, ..KasminaConfig::default() });
            manager.apply(&germinate).expect("germinates");
            assert_eq!(manager.check_isolation_on(torch.as_ref(), "seed-1", &host, &clean), Ok(0.0));
            let verdict = manager.check_isolation_on(torch.as_ref(), "seed-1", &host, &leaky);
            assert_eq!(manager.counters().isolation_violations, 1, "{label}");
            match verdict {
                Ok(overlap) => assert!(!strict && (overlap - expected).abs() <= 1e-6 * expected),
                Err(KasminaError::IsolationViolation { seed, .. }) => assert!(strict && seed == "seed-1"),
                Err(other) => panic!("{label}: {other}"),
            }
            assert!(manager.take_events().iter().any(|e| e.description == "violation_recorded"));
        }
    }
}
