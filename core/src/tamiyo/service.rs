//! `TamiyoService`: one `SystemStatePacket` in, one `AdaptationCommand` out.
//!
//! Each evaluation runs the same pipeline: the [`Policy`] decides, the proposed
//! blueprint (if any) is looked up through the [`MetadataClient`], the
//! [`RiskEngine`] rules, and the command is issued — with an id drawn from the
//! injected seeded RNG, `issued_at` from the caller's clock, `issued_by` `tamiyo`.
//! Then the command's `FieldReport` goes to the sink and the step's telemetry to the
//! outbox. The service never fails a step: every problem becomes a PAUSE with a
//! reason, a counter and an event. Tolaria reaches it through [`TamiyoPort`], in
//! process or across the network (see [`super::rpc`]).

use rand::RngCore;
use tokio::time::Instant;

use crate::breaker::BreakerState;
use crate::clock::UnixClock;
use crate::leyline::{
    AdaptationCommand, CommandPayload, CommandType, PolicyUpdate, SystemStatePacket, TelemetryEvent, TelemetryLevel,
    TelemetryPacket, Timestamp,
};
use crate::tolaria::ports::{PortError, TamiyoPort};

use super::config::TamiyoConfig;
use super::learned::{GerminationHead, HeadError, features};
use super::metadata::{BlueprintMetadata, BlueprintMetadataSource, MetadataClient, MetadataCounters, MetadataError};
use super::outcome::{RISK_REASON, ReportFigures, field_report};
use super::policy::{POLICY_VERSION, Policy, PolicyAction, PolicyDecision};
use super::risk::{RiskEngine, RiskInputs, RiskVerdict, event};
use super::sink::FieldReportSink;
use super::telemetry::{StepFigures, TelemetryOutbox, step_packets};

/// `issued_by` of every command Tamiyo issues.
pub const ISSUER: &str = "tamiyo";

/// Unix milliseconds from the caller's clock (virtual time in the sim): a
/// [`UnixClock`], or any `Fn() -> u64`.
pub trait UnixMillis {
    /// Milliseconds since the Unix epoch, now.
    fn now_ms(&self) -> u64;
}

impl<F: Fn() -> u64> UnixMillis for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

impl UnixMillis for UnixClock {
    fn now_ms(&self) -> u64 {
        UnixClock::now_ms(self)
    }
}

/// What the service has done, for telemetry and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TamiyoCounters {
    pub evaluations: u64,
    pub pauses: u64,
    pub field_reports_written: u64,
    pub field_report_failures: u64,
    pub timeouts_inference: u64,
    /// Policy updates installed (hot swaps).
    pub policy_updates_installed: u64,
    /// Policy updates refused (the head in force was kept).
    pub policy_updates_rejected: u64,
}

/// See the module docs.
pub struct TamiyoService<M, S> {
    config: TamiyoConfig,
    policy: Policy,
    risk: RiskEngine,
    metadata: MetadataClient<M>,
    sink: S,
    clock: Box<dyn UnixMillis + Send>,
    rng: Box<dyn RngCore + Send>,
    outbox: TelemetryOutbox,
    counters: TamiyoCounters,
    /// The learned germination head in force: the last known-good update.
    head: Option<GerminationHead>,
}

impl<M, S> std::fmt::Debug for TamiyoService<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TamiyoService")
            .field("config", &self.config)
            .field("conservative_mode", &self.risk.conservative_mode())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<M: BlueprintMetadataSource, S: FieldReportSink> TamiyoService<M, S> {
    /// A service over `metadata` (Urza or a catalog), writing reports to `sink`,
    /// stamping commands from `clock` and drawing command ids from `rng` (seeded).
    pub fn new(
        config: TamiyoConfig,
        metadata: M,
        sink: S,
        clock: impl UnixMillis + Send + 'static,
        rng: impl RngCore + Send + 'static,
    ) -> Self {
        assert!(config.validate().is_ok(), "invalid Tamiyo configuration: {:?}", config.validate());
        let metadata = MetadataClient::new(
            metadata,
            config.metadata_timeout,
            config.metadata_breaker,
            config.metadata_cache_ttl,
            config.metadata_cache_capacity,
        );
        Self {
            policy: Policy::new(config.policy.clone()),
            risk: RiskEngine::new(config.risk.clone(), config.conservative_mode),
            outbox: TelemetryOutbox::new(config.telemetry_outbox_capacity),
            config,
            metadata,
            sink,
            clock: Box::new(clock),
            rng: Box::new(rng),
            counters: TamiyoCounters::default(),
            head: None,
        }
    }

    /// Decides on `packet`; see the module docs. Never fails.
    pub async fn evaluate(&mut self, packet: &SystemStatePacket) -> AdaptationCommand {
        let started = Instant::now();
        let mut decision = self.policy.decide(packet);
        let policy_probability = self.choose_blueprint(&mut decision, packet);
        let blueprint = self.lookup_blueprint(&decision).await;
        let latency = started.elapsed();
        let over_step_budget = latency > self.config.step_timeout;
        let inputs = RiskInputs { packet, decision: &decision, blueprint: blueprint.as_ref(), over_step_budget };
        let mut verdict = self.risk.assess(&inputs);
        let command = self.issue(&decision, verdict.pause_reason, packet.global_step);
        if verdict.pause_reason.is_none() {
            self.policy.issued(&decision.action, packet.global_step);
        }
        self.counters.evaluations += 1;
        self.counters.timeouts_inference += u64::from(over_step_budget);
        self.counters.pauses += u64::from(command.command_type == i32::from(CommandType::Pause));
        tracing::info!(
            step = packet.global_step,
            command = %CommandType::try_from(command.command_type).unwrap_or(CommandType::Unknown),
            reason = command.annotations.get(RISK_REASON).map_or("", String::as_str),
            "tamiyo.decision"
        );
        let latency_ms = latency.as_secs_f64() * 1_000.0;
        if let Some(failure) = self.report(&command, packet, &decision, &verdict, latency_ms, policy_probability).await
        {
            verdict.events.push(failure);
        }
        self.publish(packet, &decision, verdict, latency_ms);
        command
    }

    /// With a learned head installed, a germination's blueprint is drawn from it
    /// (with the seeded RNG); returns the probability of the draw.
    fn choose_blueprint(&mut self, decision: &mut PolicyDecision, packet: &SystemStatePacket) -> Option<f32> {
        let head = self.head.as_ref()?;
        let PolicyAction::Germinate { blueprint_id, .. } = &mut decision.action else { return None };
        let uniform = (self.rng.next_u32() >> 8) as f32 / (1_u32 << 24) as f32;
        let (index, probability) = head.sample(&features(packet.validation_loss), uniform);
        blueprint_id.clone_from(&head.blueprints[index]);
        Some(probability)
    }

    /// The proposed blueprint's metadata. Not looked up in conservative mode, where
    /// the command is paused whatever the blueprint.
    async fn lookup_blueprint(
        &mut self,
        decision: &PolicyDecision,
    ) -> Option<Result<BlueprintMetadata, MetadataError>> {
        let blueprint_id = decision.blueprint_id()?;
        if self.risk.conservative_mode() {
            return None;
        }
        Some(self.metadata.lookup(blueprint_id).await)
    }

    /// The decision as an issued command, turned into a PAUSE if the risk engine vetoed it.
    fn issue(&mut self, decision: &PolicyDecision, pause_reason: Option<&str>, step: u64) -> AdaptationCommand {
        let mut command = decision.command();
        if let Some(reason) = pause_reason {
            let proposed = CommandType::try_from(command.command_type).unwrap_or(CommandType::Unknown);
            command.annotations.insert("proposed_command".to_owned(), proposed.as_str_name().to_owned());
            command.annotations.insert(RISK_REASON.to_owned(), reason.to_owned());
            command.command_type = CommandType::Pause.into();
            command.payload = None;
            command.target_seed_id.clear();
        }
        if let Some(head) = &self.head {
            command.annotations.insert("policy_version".to_owned(), head.version.clone());
        }
        command.command_id = format!("tamiyo-s{step}-{:016x}", self.rng.next_u64());
        command.issued_at = Some(Timestamp::from_millis(self.clock.now_ms()));
        command.issued_by = ISSUER.to_owned();
        command
    }

    /// Writes the command's field report; returns an event if the sink failed.
    async fn report(
        &mut self,
        command: &AdaptationCommand,
        packet: &SystemStatePacket,
        decision: &PolicyDecision,
        verdict: &RiskVerdict,
        latency_ms: f64,
        policy_probability: Option<f32>,
    ) -> Option<TelemetryEvent> {
        let figures = ReportFigures {
            loss_delta: decision.loss_delta,
            validation_loss: packet.validation_loss,
            blueprint_risk: verdict.blueprint_risk,
            inference_latency_ms: latency_ms as f32,
            conservative_mode: self.risk.conservative_mode(),
            policy_probability: policy_probability.filter(|_| is_germination(command)),
        };
        let report = field_report(command, &packet.training_run_id, self.policy_version(), figures);
        match self.sink.record(report).await {
            Ok(()) => {
                self.counters.field_reports_written += 1;
                None
            }
            Err(error) => {
                self.counters.field_report_failures += 1;
                tracing::warn!(command_id = command.command_id.as_str(), %error, "tamiyo.field_report_failed");
                Some(event("field_report_failed", TelemetryLevel::Error, &[]))
            }
        }
    }

    fn publish(
        &mut self,
        packet: &SystemStatePacket,
        decision: &PolicyDecision,
        verdict: RiskVerdict,
        latency_ms: f64,
    ) {
        let figures = StepFigures {
            global_step: packet.global_step,
            validation_loss: packet.validation_loss,
            loss_delta: decision.loss_delta,
            blueprint_risk: verdict.blueprint_risk,
            inference_latency_ms: latency_ms,
            conservative_mode: self.risk.conservative_mode(),
        };
        for telemetry in step_packets(&figures, verdict.events, self.clock.now_ms()) {
            self.outbox.push(telemetry);
        }
    }
}

/// Whether `command` went out as a germination (not vetoed into a PAUSE).
fn is_germination(command: &AdaptationCommand) -> bool {
    matches!(command.payload, Some(CommandPayload::SeedOperation(_)))
}

impl<M, S> TamiyoService<M, S> {
    /// Hot-swaps to the germination head in `update`. A payload that does not decode
    /// or validate is refused, counted and logged, and the head in force — the last
    /// known-good one — stays.
    pub fn install_policy(&mut self, update: &PolicyUpdate) -> Result<(), HeadError> {
        match GerminationHead::decode(&update.payload) {
            Ok(head) => {
                tracing::info!(policy_id = %update.policy_id, version = %head.version, "tamiyo.policy_installed");
                self.counters.policy_updates_installed += 1;
                self.head = Some(head);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(policy_id = %update.policy_id, %error, kept = self.policy_version(), "tamiyo.policy_rejected");
                self.counters.policy_updates_rejected += 1;
                Err(error)
            }
        }
    }

    /// The version of the policy in force: the installed head's, else the rule's.
    pub fn policy_version(&self) -> &str {
        self.head.as_ref().map_or(POLICY_VERSION, |head| head.version.as_str())
    }

    /// Whether conservative mode is on (`tamiyo.conservative_mode`).
    pub fn conservative_mode(&self) -> bool {
        self.risk.conservative_mode()
    }

    /// Telemetry packets queued since the last drain, oldest first.
    pub fn drain_telemetry(&mut self) -> Vec<TelemetryPacket> {
        self.outbox.drain()
    }

    /// Telemetry packets dropped because nobody drained the outbox in time.
    pub fn telemetry_dropped(&self) -> u64 {
        self.outbox.dropped()
    }

    /// Counters so far.
    pub fn counters(&self) -> TamiyoCounters {
        self.counters
    }

    /// The metadata breaker's state now (open → half-open once its cooldown is over).
    pub fn metadata_breaker_state(&mut self) -> BreakerState {
        self.metadata.breaker_state()
    }

    /// Metadata lookup counts.
    pub fn metadata_counters(&self) -> MetadataCounters {
        self.metadata.counters()
    }

    /// The field report sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The configuration in force.
    pub fn config(&self) -> &TamiyoConfig {
        &self.config
    }

    /// Unix milliseconds from the service's clock (the RPC server stamps frames with it).
    pub(super) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The service's seeded RNG (the RPC server draws frame nonces from it).
    pub(super) fn rng(&mut self) -> &mut (dyn RngCore + Send) {
        &mut *self.rng
    }
}

impl<M: BlueprintMetadataSource, S: FieldReportSink> TamiyoPort for TamiyoService<M, S> {
    async fn evaluate_step(&mut self, packet: &SystemStatePacket) -> Result<AdaptationCommand, PortError> {
        Ok(self.evaluate(packet).await)
    }
}
