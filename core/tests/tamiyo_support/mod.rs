//! Builders shared by the Tamiyo tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use esper_core::leyline::{SeedLifecycleStage, SeedState, SystemStatePacket};
use esper_core::tamiyo::{BlueprintCatalog, MemoryFieldReportSink, TamiyoConfig, TamiyoService};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// 2026-01-01T00:00:00Z, the clock every test service reads.
pub const NOW_MS: u64 = 1_767_225_600_000;

/// The service the tests drive: Karn's sample catalog, an in-memory sink, a fixed clock.
pub type TestService = TamiyoService<BlueprintCatalog, MemoryFieldReportSink>;

/// A Tolaria-like packet at `step` with training loss `loss`.
pub fn packet(step: u64, loss: f32) -> SystemStatePacket {
    SystemStatePacket {
        version: 1,
        current_epoch: 1,
        validation_loss: 0.5,
        training_loss: loss,
        global_step: step,
        packet_id: format!("run-7-s{step}"),
        source_subsystem: "tolaria".to_owned(),
        training_run_id: "run-7".to_owned(),
        ..SystemStatePacket::default()
    }
}

/// A seed in `stage` with the given gradient norm and risk score.
pub fn seed(id: &str, stage: SeedLifecycleStage, gradient_norm: f32, risk_score: f32) -> SeedState {
    SeedState { seed_id: id.to_owned(), stage: stage.into(), gradient_norm, risk_score, ..SeedState::default() }
}

/// A service over `catalog` with `config`, command ids drawn from seed 7.
pub fn service_with(config: TamiyoConfig, catalog: BlueprintCatalog) -> TestService {
    TamiyoService::new(config, catalog, MemoryFieldReportSink::default(), || NOW_MS, ChaCha8Rng::seed_from_u64(7))
}

/// A default service drawing ids and nonces from `seed`.
pub fn service_seeded(seed: u64) -> TestService {
    let catalog = BlueprintCatalog::karn();
    TamiyoService::new(
        TamiyoConfig::default(),
        catalog,
        MemoryFieldReportSink::default(),
        || NOW_MS,
        ChaCha8Rng::seed_from_u64(seed),
    )
}

/// A default service over Karn's sample catalog.
pub fn service() -> TestService {
    service_with(TamiyoConfig::default(), BlueprintCatalog::karn())
}

/// The step at which flat losses first show the default policy a plateau: the end
/// of its second trend window (steps are numbered from 0).
pub const PLATEAU: usize = 31;

/// Flat losses: the packets that lead the default policy to a plateau at [`PLATEAU`].
pub fn flat(steps: std::ops::Range<u64>) -> Vec<SystemStatePacket> {
    steps.map(|step| packet(step, 0.7)).collect()
}
