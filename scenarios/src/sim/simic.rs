//! `simic`: Simic learns Tamiyo's germination head from generated field reports,
//! publishes it over Oona, and Tamiyo hot-swaps to it.
//!
//! Hosts: `redis` (the simulated server), `simic` and the client `tamiyo`. The
//! field reports come from a hidden [`Environment`]: each candidate blueprint moves
//! the loss by an amount that depends on the validation loss at the decision (two
//! blueprints help, at opposite ends; one hurts), plus seeded noise; the behaviour
//! policy that "made" them picked uniformly, as Tamiyo's rotation does. Simic
//! trains on them and publishes; then it trains on reports from an environment in
//! which every blueprint hurts — that candidate fails validation and must never
//! reach the stream. Tamiyo reads the policy stream: it installs the update, then
//! refuses a malformed one (keeping the good one), and its germinations carry the
//! new version and the probability they were drawn with. The checks: the published
//! head's true expected reward beats the uniform head's; exactly one update was
//! installed; the withheld candidate's validation named `average_reward_negative`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::{
    BusEnvelope, CommandType, FieldReport, FieldReportOutcome, MessagePriority, PolicyUpdate, SigningKey,
    SystemStatePacket, Timestamp, VerifyPolicy,
};
use esper_core::oona::{ClientParts, OonaClient, StreamConfig};
use esper_core::simic::{Publication, Simic, SimicConfig, TrainingRun};
use esper_core::tamiyo::learned::{GerminationHead, features};
use esper_core::tamiyo::policy_updates::apply_policy_updates;
use esper_core::tamiyo::{BlueprintCatalog, MemoryFieldReportSink, TamiyoConfig, TamiyoService};
use esper_sim::redis::ServerConfig;
use esper_sim::{RngTree, SimScenario, TurmoilConnector, World};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::sim::control_loop::hosts::{SIM_EPOCH_MS, sim_clock};

trace_target!("simic");

const REDIS: &str = "redis";
const REDIS_PORT: u16 = 6379;
const SIMIC: &str = "simic";
const TAMIYO: &str = "tamiyo";
const REPORTS: usize = 512;
/// Validation losses the environment's contexts are drawn from (and averaged over).
const CONTEXT_LOSS: std::ops::Range<f32> = 0.2..2.0;

/// The candidates: Karn's four smallest SAFE blueprints.
pub fn candidates() -> Vec<String> {
    ["BP001", "BP002", "BP003", "BP004"].map(str::to_owned).to_vec()
}

/// How each candidate moves the loss: `slope·validation_loss + offset` (negative
/// is good), plus noise uniform in ±`noise`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Environment {
    pub effects: [(f32, f32); 4],
    pub noise: f32,
}

impl Environment {
    /// BP002 helps at a high loss, BP004 at a low one, BP001 a little, BP003 hurts.
    pub const LEARNABLE: Self = Self { effects: [(0.0, -0.02), (-0.12, 0.06), (0.0, 0.05), (0.1, -0.15)], noise: 0.05 };
    /// Every blueprint makes the loss worse.
    pub const HOSTILE: Self = Self { effects: [(0.0, 0.08), (0.05, 0.05), (0.0, 0.12), (0.02, 0.1)], noise: 0.02 };

    fn loss_delta(&self, action: usize, validation_loss: f32) -> f32 {
        let (slope, offset) = self.effects[action];
        slope * validation_loss + offset
    }

    /// `count` field reports of uniformly chosen germinations.
    pub fn reports(&self, count: usize, rng: &mut ChaCha8Rng) -> Vec<FieldReport> {
        let candidates = candidates();
        (0..count)
            .map(|n| {
                let validation_loss = rng.random_range(CONTEXT_LOSS);
                let action = rng.random_range(0..candidates.len());
                let loss_delta = self.loss_delta(action, validation_loss) + rng.random_range(-self.noise..=self.noise);
                FieldReport {
                    version: 1,
                    report_id: format!("fr-generated-{n}"),
                    blueprint_id: candidates[action].clone(),
                    outcome: FieldReportOutcome::Success.into(),
                    metrics: [("loss_delta".to_owned(), loss_delta), ("validation_loss".to_owned(), validation_loss)]
                        .into_iter()
                        .collect(),
                    issued_at: Some(Timestamp::from_millis(SIM_EPOCH_MS)),
                    ..FieldReport::default()
                }
            })
            .collect()
    }

    /// `head`'s exact expected reward (−loss_delta) over a grid of contexts.
    pub fn expected_reward(&self, head: &GerminationHead) -> f32 {
        let grid = 64;
        let total: f32 = (0..grid)
            .map(|step| {
                let loss =
                    CONTEXT_LOSS.start + (CONTEXT_LOSS.end - CONTEXT_LOSS.start) * (step as f32 + 0.5) / grid as f32;
                let probabilities = head.probabilities(&features(loss));
                probabilities.iter().enumerate().map(|(a, p)| -p * self.loss_delta(a, loss)).sum::<f32>()
            })
            .sum();
        total / grid as f32
    }
}

/// Simic trained on `reports` from the uniform head.
pub fn train_on(reports: &[FieldReport], rng: ChaCha8Rng) -> (Simic, Option<TrainingRun>) {
    let config = SimicConfig { training_run_id: "sim".to_owned(), ..SimicConfig::default() };
    let mut simic = Simic::new(config, GerminationHead::uniform("tamiyo-rules-v1", candidates()), rng);
    for report in reports {
        simic.ingest(report);
    }
    let run = simic.train(SIM_EPOCH_MS).ok();
    (simic, run)
}

/// What the hosts tell each other (and the checks).
#[derive(Debug, Default)]
struct Journal {
    published: Option<GerminationHead>,
    withheld: Option<Vec<&'static str>>,
    error: Option<String>,
}

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimicScenario;

impl SimScenario for SimicScenario {
    fn name(&self) -> &'static str {
        "simic"
    }

    fn summary(&self) -> &'static str {
        "Simic's PPO improves Tamiyo's germination head from field reports; a head failing validation is never published; Tamiyo hot-swaps"
    }

    fn populate(&self, world: &mut World) {
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        let journal = Rc::new(RefCell::new(Journal::default()));
        let (log, rng) = (Rc::clone(&journal), world.rng().child(SIMIC));
        world.host(SIMIC, move || {
            let (log, rng) = (Rc::clone(&log), rng.clone());
            async move {
                if let Err(error) = simic_host(&log, &rng).await {
                    log.borrow_mut().error.get_or_insert(error);
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        let rng = world.rng().child(TAMIYO);
        world.client(TAMIYO, async move { tamiyo_client(&journal, &rng).await.map_err(Into::into) });
    }
}

fn client(who: &str, rng: ChaCha8Rng) -> Result<OonaClient<TurmoilConnector, ChaCha8Rng>, String> {
    let key = SigningKey::new(b"simic-scenario".to_vec()).map_err(|e| e.to_string())?;
    let parts = ClientParts { key, verify: VerifyPolicy::default(), clock: sim_clock(), rng };
    let config = StreamConfig {
        group: who.to_owned(),
        consumer: who.to_owned(),
        block: Duration::from_millis(50),
        ..StreamConfig::default()
    };
    Ok(OonaClient::new(TurmoilConnector, REDIS, REDIS_PORT, config, parts))
}

/// Trains and publishes the learnable head, then trains on hostile reports.
async fn simic_host(log: &RefCell<Journal>, rng: &RngTree) -> Result<(), String> {
    let mut bus = client(SIMIC, rng.stream("bus"))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reports = Environment::LEARNABLE.reports(REPORTS, &mut rng.stream("reports"));
    let (mut simic, run) = train_on(&reports, rng.stream("ppo"));
    let run = run.ok_or("too few experiences")?;
    match simic.publish(&mut bus, &run, sim_clock().now_ms()).await.map_err(|e| e.to_string())? {
        Publication::Published { .. } => log.borrow_mut().published = Some(run.candidate.clone()),
        other => return Err(format!("the learnable head was not published: {other:?}")),
    }
    let hostile = Environment::HOSTILE.reports(REPORTS, &mut rng.stream("hostile"));
    let (mut simic, run) = train_on(&hostile, rng.stream("ppo-hostile"));
    let run = run.ok_or("too few experiences")?;
    let telemetry = simic.telemetry(&run, sim_clock().now_ms()).map_err(|e| e.to_string())?;
    let verdict = telemetry.last().and_then(|packet| packet.metric("simic.validation.pass"));
    match simic.publish(&mut bus, &run, sim_clock().now_ms()).await.map_err(|e| e.to_string())? {
        Publication::Withheld { validation } if verdict == Some(0.0) => {
            log.borrow_mut().withheld = Some(validation.failures.iter().map(|(rule, _)| *rule).collect());
        }
        other => return Err(format!("a head failing validation went {other:?} (pass metric {verdict:?})")),
    }
    Ok(())
}

/// Installs updates from the stream, then checks the hot swap and the gate.
async fn tamiyo_client(journal: &RefCell<Journal>, rng: &RngTree) -> Result<(), String> {
    let mut bus = client(TAMIYO, rng.stream("bus"))?;
    let clock = UnixClock::anchored_at(SIM_EPOCH_MS);
    let mut tamiyo = TamiyoService::new(
        TamiyoConfig::default(),
        BlueprintCatalog::karn(),
        MemoryFieldReportSink::default(),
        clock,
        rng.stream("tamiyo"),
    );
    let before = germinations(&mut tamiyo, 0).await;
    let mut installed = 0;
    for _ in 0..100 {
        installed += apply_policy_updates(&mut bus, &mut tamiyo).await.map_err(|e| e.to_string())?.installed;
        if journal.borrow().withheld.is_some() && installed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (published, withheld) = {
        let journal = journal.borrow();
        if let Some(error) = &journal.error {
            return Err(format!("simic failed: {error}"));
        }
        let published = journal.published.clone().ok_or("nothing was published")?;
        (published, journal.withheld.clone().ok_or("the hostile run never finished")?)
    };
    // Anything the withheld run had published would have arrived by now (same stream, later).
    installed += apply_policy_updates(&mut bus, &mut tamiyo).await.map_err(|e| e.to_string())?.installed;
    if installed != 1 || tamiyo.policy_version() != published.version {
        return Err(format!("installed {installed} updates, policy {}", tamiyo.policy_version()));
    }
    if !withheld.contains(&"average_reward_negative") {
        return Err(format!("the hostile head was withheld for {withheld:?}"));
    }
    let (uniform, trained) = (
        Environment::LEARNABLE.expected_reward(&GerminationHead::uniform("u", candidates())),
        Environment::LEARNABLE.expected_reward(&published),
    );
    if trained <= uniform + 0.02 {
        return Err(format!("training did not improve the expected reward: {uniform:.4} → {trained:.4}"));
    }
    check_rejection_keeps_the_head(&mut bus, &mut tamiyo, &published.version).await?;
    let after = germinations(&mut tamiyo, 1_000).await;
    let stamped = after.iter().all(|(version, probability)| *version == published.version && probability.is_some());
    if before.is_empty() || after.is_empty() || !stamped || before.iter().any(|(_, p)| p.is_some()) {
        return Err(format!("germinations before {before:?}, after {after:?}"));
    }
    tracing::info!(target: TRACE_TARGET, uniform, trained, germinations = after.len(), "simic: hot swap checked");
    Ok(())
}

/// A malformed update is refused and the installed head stays.
async fn check_rejection_keeps_the_head(
    bus: &mut OonaClient<TurmoilConnector, ChaCha8Rng>,
    tamiyo: &mut TamiyoService<BlueprintCatalog, MemoryFieldReportSink>,
    version: &str,
) -> Result<(), String> {
    let bad = PolicyUpdate {
        version: 1,
        policy_id: "bad".to_owned(),
        payload: b"{\"weights\":1}".to_vec(),
        ..PolicyUpdate::default()
    };
    bus.publish(&BusEnvelope::wrap(&bad, MessagePriority::Normal)).await.map_err(|e| e.to_string())?;
    let mut rejected = 0;
    for _ in 0..20 {
        rejected += apply_policy_updates(bus, tamiyo).await.map_err(|e| e.to_string())?.rejected;
        if rejected > 0 {
            break;
        }
    }
    if rejected != 1 || tamiyo.policy_version() != version || tamiyo.counters().policy_updates_rejected != 1 {
        return Err(format!("malformed update: rejected {rejected}, policy now {}", tamiyo.policy_version()));
    }
    Ok(())
}

/// Feeds Tamiyo 160 flat-loss steps from `first_step`; returns each germination's
/// policy version and the probability recorded in its field report.
async fn germinations(
    tamiyo: &mut TamiyoService<BlueprintCatalog, MemoryFieldReportSink>,
    first_step: u64,
) -> Vec<(String, Option<f32>)> {
    let mut found = Vec::new();
    for step in first_step..first_step + 160 {
        let packet = SystemStatePacket {
            version: 1,
            global_step: step,
            training_loss: 0.5,
            validation_loss: 0.3,
            training_run_id: "simic-sim".to_owned(),
            ..SystemStatePacket::default()
        };
        let command = tamiyo.evaluate(&packet).await;
        if command.command_type == i32::from(CommandType::Seed) {
            let version = command.annotations.get("policy_version").cloned().unwrap_or_default();
            let probability = tamiyo.sink().reports().last().and_then(|r| r.metrics.get("policy_probability").copied());
            found.push((version, probability));
        }
    }
    found
}
