//! `rollback-deadline`: a rollback that cannot finish in time halts training, and the
//! halt reaches the Oona emergency stream; one that can, restores and trains on.
//!
//! Tolaria trains with its fast rollback tier disabled and its checkpoint on a disk
//! whose reads take a time drawn from the seed: just inside, exactly at or just past
//! the 250 ms rollback deadline, or far past it (400 ms). In epoch 2 a sample at a
//! seeded position is corrupted (NaN inputs, a bad record in the data pipeline); the
//! step diverges and the rollback misses the fast tier and reads the checkpoint.
//! A read past the deadline must count `deadline_exceeded_total` = 1, report the
//! deadline as its latency, and escalate to L4: Tolaria halts, and the client reads
//! the halt signal back from the emergency stream (telemetry and emergency signals
//! go through the real Oona client into the simulated Redis). A read within it —
//! exactly at the deadline included — must restore the checkpoint, with no deadline
//! miss and no halt.
//!
//! Half the seeds (drawn) instead keep the fast tier at its default cap (Esper-Lite's
//! `TOLARIA_ROLLBACK_FAST_CAP_MB`, 32 MiB), roll a failed epoch back to its start
//! (`TOLARIA_ROLLBACK_ENABLED`) and train a model whose snapshots are half a
//! megabyte (`Linear(32768 → 2)` with its momentum buffers, [`WIDE_FEATURES`]; real
//! models' are larger still): by the divergence in epoch 2 the run has filed 17 to
//! 32 of them, at most 16 MiB, which the default tier holds whole, so the epoch's
//! rollback must hit it — restoring the epoch's starting state from memory,
//! whatever the disk, with no fast miss and no halt. A tier sized in kilobytes, or
//! in one or a few of these snapshots, misses and reads the slow disk instead.
use std::time::Duration;

use esper_core::kasmina::{KasminaConfig, SeedManager};
use esper_core::leyline::{BusMessageType, EmergencyLevel, EmergencySignal, SigningKey, VerifyPolicy};
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_core::tolaria::device::{Dataset, DeviceKind, ModelSpec};
use esper_core::tolaria::metrics::TolariaCounters;
use esper_core::tolaria::{
    CHECKPOINT_PATH, Collaborators, EpochReport, StorageCheckpoints, Trainer, TrainingLoopConfig,
};
use esper_sim::redis::ServerConfig;
use esper_sim::{ClockSkew, RngTree, SimDisk, SimDiskConfig, SimScenario, TurmoilConnector, World, WorldConfig};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::hosts::{TOLARIA, TamiyoTelemetry, sim_clock, tamiyo_client, tamiyo_host, training_config};

pub(crate) const REDIS: &str = "redis";
/// How long a read of Tolaria's disk takes, one drawn per seed: around the
/// 250 ms rollback deadline, and far past it.
const READ_LATENCIES_MS: [u64; 4] = [249, 250, 251, 400];
/// Inputs of the model trained under the default fast tier: a snapshot of
/// `Linear(32768 → 2)`, weights and momentum, is 524,320 bytes.
const WIDE_FEATURES: usize = 32_768;
pub(crate) const REDIS_PORT: u16 = 6_379;
/// The bus secret in the sim (the real profile reads `ESPER_LEYLINE_SECRET`).
pub(crate) const SIM_BUS_SECRET: &[u8] = b"esper-sim-oona-secret";

/// The fast rollback tier a seed runs with (drawn from the `fast-tier` stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FastTier {
    /// A cap of 0: the rollback reads the checkpoint from the slow disk.
    Disabled,
    /// The default cap, and a model whose snapshots are large.
    Default,
}

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollbackDeadlineScenario;

impl SimScenario for RollbackDeadlineScenario {
    fn name(&self) -> &'static str {
        "rollback-deadline"
    }

    fn summary(&self) -> &'static str {
        "a diverged step's rollback misses its deadline on a slow disk; L4 halt lands on the Oona emergency stream"
    }

    fn world_config(&self) -> WorldConfig {
        WorldConfig { max_latency: Duration::from_millis(2), ..WorldConfig::default() }
    }

    fn populate(&self, world: &mut World) {
        tamiyo_host(world, TamiyoTelemetry::Unread);
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        let rng = world.rng().child("tolaria");
        let read_ms = READ_LATENCIES_MS[rng.stream("disk").random_range(0..READ_LATENCIES_MS.len())];
        let slow = SimDiskConfig { read_latency: Duration::from_millis(read_ms), ..SimDiskConfig::default() };
        let disk = world.disk(TOLARIA, slow);
        let tier = if rng.stream("fast-tier").random_bool(0.5) { FastTier::Default } else { FastTier::Disabled };
        world.client(TOLARIA, async move { drill(rng, disk, read_ms, tier).await.map_err(Into::into) });
    }
}

/// An Oona client of the world's Redis, consumer `tolaria-<name>`, nonces from `rng`.
pub(crate) fn bus(rng: &RngTree, name: &str) -> Result<OonaClient<TurmoilConnector, ChaCha8Rng>, String> {
    let key = SigningKey::new(SIM_BUS_SECRET.to_vec()).map_err(|e| e.to_string())?;
    let parts = ClientParts { key, verify: VerifyPolicy::default(), clock: sim_clock(), rng: rng.stream(name) };
    let config = StreamConfig { consumer: format!("tolaria-{name}"), ..StreamConfig::default() };
    Ok(OonaClient::new(TurmoilConnector, REDIS, REDIS_PORT, config, parts))
}

/// `clean` with one sample, for epoch 2, corrupted to NaN.
fn corrupted_dataset(clean: &Dataset, rng: &RngTree, spec: &ModelSpec) -> Result<Dataset, String> {
    let whole = clean.whole();
    let sample = rng.stream("corruption").random_range(0..64_usize);
    let mut inputs = whole.inputs;
    inputs[sample * spec.features..(sample + 1) * spec.features].fill(f32::NAN);
    Dataset::from_samples(spec.features, inputs, whole.targets).map_err(|e| e.to_string())
}

async fn drill(rng: RngTree, disk: SimDisk, read_ms: u64, tier: FastTier) -> Result<(), String> {
    // The default tier's run also rolls a failed epoch back to its start, past
    // the step before the divergence that is always the tier's newest state.
    let (spec, fast_cap, rollback_enabled) = match tier {
        FastTier::Disabled => (ModelSpec::rc1(), 0, false),
        FastTier::Default => (
            ModelSpec { features: WIDE_FEATURES, ..ModelSpec::rc1() },
            TrainingLoopConfig::default().rollback_fast_cap_bytes,
            true,
        ),
    };
    let clean = Dataset::generate(64, spec.features, spec.classes, &mut rng.stream("dataset"));
    let corrupted = corrupted_dataset(&clean, &rng, &spec)?;
    let model = DeviceKind::Synthetic.build(spec, &mut rng.stream("model")).map_err(|e| e.to_string())?;
    let clock = sim_clock();
    let peers = Collaborators {
        tamiyo: tamiyo_client(clock, ClockSkew::default(), &rng)?,
        kasmina: SeedManager::new(KasminaConfig::default()),
        telemetry: bus(&rng, "telemetry")?,
        emergency: bus(&rng, "emergency")?,
    };
    let config = TrainingLoopConfig {
        rollback_fast_cap_bytes: fast_cap,
        rollback_enabled,
        ..training_config("sim-rollback-deadline")
    };
    let config_deadline_ms = config.rollback_deadline.as_secs_f64() * 1_000.0;
    let store = StorageCheckpoints::new(disk, CHECKPOINT_PATH);
    let mut trainer = Trainer::new(config, model, clean, peers, store, clock).map_err(|e| e.to_string())?;
    let first = trainer.run_epoch().await.map_err(|e| e.to_string())?;
    if first.failure.is_some() || first.halted {
        return Err(format!("the clean first epoch failed: {:?}", first.failure));
    }
    let start = trainer.snapshot().map_err(|e| e.to_string())?;
    trainer.replace_dataset(corrupted).map_err(|e| e.to_string())?;
    let second = trainer.run_epoch().await.map_err(|e| e.to_string())?;
    let counters = trainer.counters();
    if tier == FastTier::Default {
        let restored = trainer.snapshot().map_err(|e| e.to_string())?;
        return check_fast_restore(&second, counters, (&start, &restored), trainer.fast_tier_bytes());
    }
    let in_time = read_ms as f64 <= config_deadline_ms;
    let (misses, restored) = (counters.rollback_deadline_exceeded_total, !second.halted);
    if counters.rollback_fast_misses_total != 1 || (misses, restored) != (u64::from(!in_time), in_time) {
        return Err(format!(
            "a {read_ms} ms checkpoint read against a {config_deadline_ms} ms deadline: expected {}, got halted={} {counters:?}",
            if in_time { "a restore and no halt" } else { "one deadline miss and a halt" },
            second.halted
        ));
    }
    if in_time {
        return Ok(());
    }
    check_restore_latency(&second, config_deadline_ms, read_ms)?;
    let signals = read_emergency_stream(&rng).await?;
    let halt = signals.iter().find(|s| s.level == i32::from(EmergencyLevel::Halt));
    match halt {
        Some(signal) if signal.reason == "rollback_deadline" && signal.origin == "tolaria" => Ok(()),
        _ => Err(format!("no rollback_deadline halt on the emergency stream: {signals:?}")),
    }
}

/// Under the default tier, epoch 2's divergence was rolled back from memory to
/// the state it started from (`start`; `restored` after the epoch): no fast miss,
/// no checkpoint read, so no deadline miss and no halt, however slow the disk.
fn check_fast_restore(
    report: &EpochReport,
    counters: TolariaCounters,
    (start, restored): (&[u8], &[u8]),
    held: usize,
) -> Result<(), String> {
    let (fast_misses, misses) = (counters.rollback_fast_misses_total, counters.rollback_deadline_exceeded_total);
    if report.failure.is_none() || report.halted || fast_misses != 0 || misses != 0 {
        return Err(format!(
            "epoch 2 diverged with the default fast tier holding {held} bytes of {}-byte snapshots: expected a \
             restore from memory, got failure={:?} halted={} {counters:?}",
            start.len(),
            report.failure,
            report.halted
        ));
    }
    if restored != start {
        return Err("epoch 2 was rolled back from the fast tier, but the model differs from its start".to_owned());
    }
    Ok(())
}

/// The latency the epoch's `tolaria.rollback.restore_failed` event reports is the
/// virtual time the rollback took: it gave up at the deadline, before the slow
/// read could finish.
fn check_restore_latency(report: &EpochReport, deadline_ms: f64, read_ms: u64) -> Result<(), String> {
    let reported = report
        .telemetry
        .iter()
        .flat_map(|packet| &packet.events)
        .find(|event| event.description == "tolaria.rollback.restore_failed")
        .and_then(|event| event.attributes.get("latency_ms")?.parse::<f64>().ok());
    match reported {
        Some(latency) if latency >= deadline_ms && latency < read_ms as f64 => Ok(()),
        _ => Err(format!(
            "the rollback gave up at its {deadline_ms} ms deadline, before a {read_ms} ms read, but reported {reported:?} ms"
        )),
    }
}

/// Everything on `oona.emergency` that is an emergency signal, read as a consumer.
pub(crate) async fn read_emergency_stream(rng: &RngTree) -> Result<Vec<EmergencySignal>, String> {
    let mut reader = bus(rng, "reader")?;
    let stream = reader.config().emergency_stream.clone();
    reader.ensure_consumer_group(&stream).await.map_err(|e| e.to_string())?;
    let mut signals = Vec::new();
    for _ in 0..8 {
        let round = reader
            .consume(&stream, |delivery| {
                if delivery.envelope.message_type() == BusMessageType::EmergencySignal {
                    signals.push(delivery.envelope.open::<EmergencySignal>()?);
                }
                Ok::<(), esper_core::leyline::DecodeError>(())
            })
            .await
            .map_err(|e| e.to_string())?;
        if round.handled == 0 && round.claimed == 0 {
            break;
        }
    }
    Ok(signals)
}

#[cfg(test)]
mod tests {
    use esper_core::leyline::{TelemetryEvent, TelemetryLevel, TelemetryPacket};

    use super::*;

    fn reporting(latency_ms: &str) -> EpochReport {
        let event = TelemetryEvent::named(
            "tolaria.rollback.restore_failed",
            TelemetryLevel::Critical,
            &[("latency_ms", latency_ms.to_owned())],
        );
        let packet = TelemetryPacket { events: vec![event], ..TelemetryPacket::default() };
        EpochReport {
            epoch: 2,
            loss: f32::NAN,
            accuracy: 0.0,
            latency_ms: 0.0,
            steps: 8,
            failure: None,
            conservative: false,
            halted: true,
            telemetry: vec![packet],
        }
    }

    #[test]
    fn a_restore_latency_other_than_the_time_waited_is_refused() {
        assert!(check_restore_latency(&reporting("250.000"), 250.0, 400).is_ok());
        // Seconds reported as milliseconds, the read's time, or no figure at all.
        for wrong in ["0.250", "400.000", "1000.250", "n/a"] {
            assert!(check_restore_latency(&reporting(wrong), 250.0, 400).is_err(), "{wrong}");
        }
    }
}
