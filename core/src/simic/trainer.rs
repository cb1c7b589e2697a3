//! `Simic`: field reports in, a validated policy update out (see the module docs
//! of [`crate::simic`]).

use rand::RngCore;

use crate::leyline::{
    BusEnvelope, FieldReport, MessagePriority, MetricPoint, PolicyUpdate, TelemetryBuilder, TelemetryEvent,
    TelemetryLevel, TelemetryPacket, TelemetryTooLarge, Timestamp,
};
use crate::net::Connector;
use crate::nissa::{SIMIC_REWARD_METRIC, SIMIC_SOURCE};
use crate::oona::{OonaClient, OonaError, PublishOutcome};
use crate::tamiyo::learned::GerminationHead;

use super::ppo::{self, IterationStats, PpoConfig};
use super::replay::ReplayBuffer;
use super::validation::{Validation, validate};

/// How Simic trains.
#[derive(Debug, Clone, PartialEq)]
pub struct SimicConfig {
    /// PPO iterations per training run.
    pub iterations: usize,
    pub ppo: PpoConfig,
    /// Experiences kept (Esper-Lite: 1024).
    pub replay_capacity: usize,
    /// Oldest experience kept, ms (Esper-Lite: 24 h).
    pub replay_ttl_ms: u64,
    /// Fewest experiences a training run starts from.
    pub min_experiences: usize,
    /// Names the run in policy ids and updates.
    pub training_run_id: String,
}

impl Default for SimicConfig {
    fn default() -> Self {
        Self {
            iterations: 20,
            ppo: PpoConfig::default(),
            replay_capacity: 1_024,
            replay_ttl_ms: 24 * 3_600 * 1_000,
            min_experiences: 32,
            training_run_id: "simic".to_owned(),
        }
    }
}

/// What one training run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRun {
    /// The trained head (not yet published).
    pub candidate: GerminationHead,
    /// Per iteration, in order.
    pub iterations: Vec<IterationStats>,
    /// The gate's verdict on the candidate.
    pub validation: Validation,
}

/// What became of a training run's candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    /// On the policy stream as `policy_id`.
    Published { policy_id: String },
    /// Failed validation: never published.
    Withheld { validation: Validation },
    /// Oona refused it (backpressure, rate limit); Simic keeps its base head.
    Refused(PublishOutcome),
}

/// Why Simic could not train or publish.
#[derive(Debug, thiserror::Error)]
pub enum SimicError {
    #[error("Simic has {have} usable experiences; a training run needs {need}")]
    NotEnoughExperience { have: usize, need: usize },
    #[error("Simic could not publish the policy update: {0}")]
    Bus(#[from] OonaError),
}

/// See the module docs of [`crate::simic`].
pub struct Simic {
    config: SimicConfig,
    replay: ReplayBuffer,
    /// The last published head (or the one Tamiyo started from): training starts here.
    base: GerminationHead,
    rng: Box<dyn RngCore + Send>,
    runs: u64,
    iterations_total: u64,
}

impl std::fmt::Debug for Simic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simic").field("config", &self.config).field("base", &self.base).finish_non_exhaustive()
    }
}

impl Simic {
    /// Simic improving `base`; `rng` (seeded) shuffles minibatches.
    pub fn new(config: SimicConfig, base: GerminationHead, rng: impl RngCore + Send + 'static) -> Self {
        assert!(base.validate().is_ok(), "Simic must start from a valid head: {:?}", base.validate());
        let replay = ReplayBuffer::new(config.replay_capacity, config.replay_ttl_ms);
        Self { config, replay, base, rng: Box::new(rng), runs: 0, iterations_total: 0 }
    }

    /// Takes in one field report; returns whether it held a usable experience.
    pub fn ingest(&mut self, report: &FieldReport) -> bool {
        self.replay.push(report, &self.base.blueprints)
    }

    /// Trains a candidate from the base head on the replay (experiences past the
    /// TTL at `now_ms` dropped first), and validates it.
    pub fn train(&mut self, now_ms: u64) -> Result<TrainingRun, SimicError> {
        self.replay.expire(now_ms);
        let replay: Vec<_> = self.replay.experiences().iter().copied().collect();
        if replay.len() < self.config.min_experiences.max(1) {
            return Err(SimicError::NotEnoughExperience { have: replay.len(), need: self.config.min_experiences });
        }
        self.runs += 1;
        let mut candidate = self.base.clone();
        candidate.version = format!("simic-{}-{}", self.config.training_run_id, self.runs);
        let mut iterations = Vec::with_capacity(self.config.iterations);
        for _ in 0..self.config.iterations {
            let stats = ppo::iterate(&mut candidate, &replay, &self.config.ppo, &mut *self.rng);
            self.iterations_total += 1;
            tracing::debug!(reward = stats.reward, loss = stats.loss, entropy = stats.entropy, "simic: iteration");
            iterations.push(stats);
        }
        let last = iterations.last().copied().unwrap_or(IterationStats {
            reward: f32::NAN,
            policy_loss: f32::NAN,
            value_loss: f32::NAN,
            entropy: f32::NAN,
            loss: f32::NAN,
        });
        let validation = validate(&candidate, &last);
        tracing::info!(version = %candidate.version, experiences = replay.len(), reward = last.reward, passed = validation.passed(), "simic: trained");
        Ok(TrainingRun { candidate, iterations, validation })
    }

    /// Publishes `run`'s candidate on the policy stream if it passed validation;
    /// a published candidate becomes the base of the next run.
    pub async fn publish<C: Connector, R: RngCore>(
        &mut self,
        client: &mut OonaClient<C, R>,
        run: &TrainingRun,
        now_ms: u64,
    ) -> Result<Publication, SimicError> {
        if !run.validation.passed() {
            tracing::warn!(version = %run.candidate.version, failures = ?run.validation.failures, "simic: validation failed; not published");
            return Ok(Publication::Withheld { validation: run.validation.clone() });
        }
        let update = PolicyUpdate {
            version: 1,
            policy_id: run.candidate.version.clone(),
            training_run_id: self.config.training_run_id.clone(),
            issued_at: Some(Timestamp::from_millis(now_ms)),
            tamiyo_policy_version: run.candidate.version.clone(),
            payload: run.candidate.encode(),
        };
        match client.publish(&BusEnvelope::wrap(&update, MessagePriority::Normal)).await? {
            PublishOutcome::Published { .. } => {
                tracing::info!(policy_id = %update.policy_id, "simic: policy published");
                self.base = run.candidate.clone();
                Ok(Publication::Published { policy_id: update.policy_id })
            }
            refused => Ok(Publication::Refused(refused)),
        }
    }

    /// PPO iterations run so far (`simic.training.iterations`).
    pub fn iterations_total(&self) -> u64 {
        self.iterations_total
    }

    /// The head training starts from.
    pub fn base(&self) -> &GerminationHead {
        &self.base
    }

    /// Field reports that held no usable experience.
    pub fn reports_skipped(&self) -> u64 {
        self.replay.skipped()
    }

    /// `run`'s telemetry: per iteration `simic.training.reward`, `.loss` and
    /// `.iterations` (the running total), then `simic.validation.pass`, with a
    /// WARNING event naming each broken rule when the gate refused the candidate.
    pub fn telemetry(&self, run: &TrainingRun, now_ms: u64) -> Result<Vec<TelemetryPacket>, TelemetryTooLarge> {
        let header = |suffix: String, level: TelemetryLevel| TelemetryPacket {
            packet_id: format!("{}{suffix}", run.candidate.version),
            timestamp: Some(Timestamp::from_millis(now_ms)),
            source_subsystem: SIMIC_SOURCE.to_owned(),
            level: level.into(),
            ..TelemetryPacket::default()
        };
        let first = self.iterations_total - run.iterations.len() as u64;
        let mut packets = Vec::with_capacity(run.iterations.len() + 1);
        for (offset, stats) in run.iterations.iter().enumerate() {
            let iteration = first + offset as u64 + 1;
            let packet = TelemetryBuilder::new(header(format!("-i{iteration}"), TelemetryLevel::Info))
                .metric(MessagePriority::High, MetricPoint::new(SIMIC_REWARD_METRIC, f64::from(stats.reward), ""))
                .metric(MessagePriority::High, MetricPoint::new("simic.training.loss", f64::from(stats.loss), ""))
                .metric(MessagePriority::Normal, MetricPoint::new("simic.training.iterations", iteration as f64, ""))
                .build()?;
            packets.extend(packet);
        }
        let passed = run.validation.passed();
        let level = if passed { TelemetryLevel::Info } else { TelemetryLevel::Warning };
        let mut verdict = TelemetryBuilder::new(header("-validation".to_owned(), level))
            .metric(MessagePriority::High, MetricPoint::new("simic.validation.pass", f64::from(u8::from(passed)), ""));
        if !passed {
            let attributes: Vec<(&str, String)> =
                run.validation.failures.iter().map(|(rule, figure)| (*rule, figure.clone())).collect();
            verdict =
                verdict.event(TelemetryEvent::named("simic.validation_failed", TelemetryLevel::Warning, &attributes));
        }
        packets.extend(verdict.build()?);
        Ok(packets)
    }
}
