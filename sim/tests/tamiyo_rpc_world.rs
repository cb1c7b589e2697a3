//! Tamiyo's RPC in the seeded world: a Tolaria-like client consults Tamiyo across a
//! partition and its repair, each call under the step timeout as Tolaria makes it.
//! Calls before the cut are answered, calls during it time out, and after the repair
//! the client reconnects and is answered again — the same way for the same seed.

use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::{SigningKey, SystemStatePacket};
use esper_core::tamiyo::{
    BlueprintCatalog, MemoryFieldReportSink, RpcConfig, RpcStats, TamiyoClient, TamiyoConfig, TamiyoService,
    serve_tamiyo,
};
use esper_core::tolaria::ports::{Outbox, TamiyoPort};
use esper_sim::{Fault, FaultSchedule, ScheduledFault, TraceMode, World};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::{sleep, timeout};

const PORT: u16 = 7300;
const STEPS: u64 = 60;
const STEP_EVERY: Duration = Duration::from_millis(100);
const STEP_TIMEOUT: Duration = Duration::from_millis(500);
const CUT_MS: u64 = 2_000;
const REPAIR_MS: u64 = 4_000;

fn rpc_config() -> RpcConfig {
    RpcConfig::new(SigningKey::new(b"world-secret".to_vec()).expect("non-empty"))
}

/// Unix milliseconds advancing with (virtual) tokio time from the world's epoch.
fn clock() -> UnixClock {
    UnixClock::anchored_at(1_735_689_600_000)
}

fn packet(step: u64) -> SystemStatePacket {
    SystemStatePacket {
        global_step: step,
        training_loss: 1.0 / (1.0 + step as f32 * 0.05),
        training_run_id: "world-run".to_owned(),
        ..SystemStatePacket::default()
    }
}

/// What became of each step's call: `true` if Tamiyo answered in time.
async fn consult(seed: u64) -> Vec<bool> {
    let rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a);
    let mut client = TamiyoClient::new(esper_sim::TurmoilConnector, "tamiyo", PORT, rpc_config(), clock(), rng);
    let mut answered = Vec::new();
    for step in 0..STEPS {
        let packet = packet(step);
        let call = timeout(STEP_TIMEOUT, client.evaluate_step(&packet)).await;
        answered.push(matches!(call, Ok(Ok(_))));
        sleep(STEP_EVERY).await;
    }
    answered
}

fn run(seed: u64) -> esper_sim::RunReport {
    let (a, b) = ("tolaria".to_owned(), "tamiyo".to_owned());
    let schedule = FaultSchedule::new(vec![
        ScheduledFault { at_ms: CUT_MS, fault: Fault::Partition { a: a.clone(), b: b.clone() } },
        ScheduledFault { at_ms: REPAIR_MS, fault: Fault::Repair { a, b } },
    ]);
    let mut world = World::new(seed, schedule);
    world.host("tamiyo", move || async move {
        let listener = esper_core::net::Connector::bind(&esper_sim::TurmoilConnector, PORT).await?;
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let catalog = BlueprintCatalog::karn();
        let sink = MemoryFieldReportSink::default();
        let mut service = TamiyoService::new(TamiyoConfig::default(), catalog, sink, clock(), rng);
        let mut telemetry = Outbox::default();
        Err(serve_tamiyo(listener, &mut service, rpc_config(), RpcStats::default(), &mut telemetry).await.into())
    });
    world.client("tolaria", async move {
        let answered = consult(seed).await;
        let at = |step: u64| step * STEP_EVERY.as_millis() as u64;
        let before = (0..STEPS).filter(|&s| at(s) + 600 < CUT_MS);
        let during = (0..STEPS).filter(|&s| at(s) > CUT_MS && at(s) + 600 < REPAIR_MS);
        let after = (0..STEPS).filter(|&s| at(s) > REPAIR_MS + 1_000);
        let answered_at = |s: u64| answered.get(s as usize).copied().unwrap_or(false);
        if !before.clone().all(answered_at) || during.clone().any(answered_at) || !after.clone().all(answered_at) {
            return Err(format!("unexpected answers per step: {answered:?}").into());
        }
        Ok(())
    });
    world.run("tamiyo-rpc", TraceMode::Hash)
}

#[test]
fn tamiyo_rpc_survives_a_partition_and_is_deterministic() {
    for seed in [1, 2, 3] {
        let first = run(seed);
        assert!(first.passed(), "{first}");
        let second = run(seed);
        assert_eq!(first.hash, second.hash, "seed {seed}: same seed, same trace");
    }
}
