//! `tamiyo-risk`: Tamiyo's risk engine, judged decision by decision.
//!
//! In the control loop Tolaria's packets are healthy: no seed is risky, no hook
//! runs over budget, every blueprint is Karn's, Urza is never slow, so Tamiyo's
//! vetoes go unexercised (mutation testing found almost every gate of
//! `tamiyo/risk.rs` unguarded). Here a stand-in for Tolaria sends two real
//! Tamiyos, over signed RPC, the same drawn run of packets that cross every gate:
//! seeds at and over the policy-risk thresholds, losses whose smoothed change
//! lands exactly on the spike and warning thresholds or well over them, hook,
//! step and Kasmina latencies at and over their budgets, isolation violations,
//! device pressure at and over 95 %. Their blueprints come from a drawn catalog
//! (risks at and over the warning and quarantine thresholds, quarantine-only
//! entries, one blueprint the catalog lacks), looked up with no cache through a
//! source whose delay the driver sets: drawn outage windows make every lookup
//! outlast the metadata timeout, so timeouts open the metadata breaker and the
//! breaker refuses lookups. One Tamiyo starts in conservative mode, as an
//! operator would start it (`TAMIYO_CONSERVATIVE_MODE`).
//!
//! Checked (`risk-gates`): every decision's veto, events and figures are those the
//! [`oracle`] derives from what the decision was shown.

mod oracle;
mod plan;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use esper_core::leyline::{SystemStatePacket, TelemetryPacket};
use esper_core::net::Connector;
use esper_core::planted::Planted;
use esper_core::tamiyo::metadata::LookupDelay;
use esper_core::tamiyo::{
    BlueprintCatalog, BlueprintMetadata, BlueprintMetadataSource, MemoryFieldReportSink, RpcStats, TamiyoClient,
    TamiyoConfig, TamiyoService, serve_tamiyo,
};
use esper_core::tolaria::ports::{PortError, TelemetryPort};
use esper_sim::{Incarnations, SimScenario, TurmoilConnector, Violation, World, WorldConfig};

use crate::sim::control_loop::hosts::{TAMIYO, TAMIYO_PORT, TOLARIA, rpc_config, sim_clock, tamiyo_client_at};
use oracle::{Decision, RiskOracle};
use plan::Plan;

trace_target!("tamiyo_risk");

/// The Tamiyo started in conservative mode.
const CAREFUL: &str = "tamiyo-conservative";
/// Time between two packets (both Tamiyos answer within it or soon after).
const STEP_GAP: Duration = Duration::from_millis(10);
/// Time for the last step's telemetry to reach the recorders.
const SETTLE: Duration = Duration::from_millis(200);

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct TamiyoRiskScenario;

impl TamiyoRiskScenario {
    /// Tamiyo as the scenario runs it: Esper-Lite's defaults, with the drawn
    /// blueprints in the policy's rotation, a policy that proposes often (short
    /// windows, a wide plateau band, no cooldown), and no metadata cache, so
    /// each proposal's lookup reaches the source (or is refused by the breaker).
    fn config(blueprints: Vec<String>, conservative: bool) -> TamiyoConfig {
        let mut config = TamiyoConfig {
            metadata_cache_ttl: Duration::ZERO,
            conservative_mode: conservative,
            ..TamiyoConfig::default()
        };
        config.policy.blueprints = blueprints;
        config.policy.trend_window = 2;
        config.policy.plateau_relative = 0.5;
        config.policy.rising_relative = 0.5;
        config.policy.cooldown_steps = 0;
        config
    }
}

impl SimScenario for TamiyoRiskScenario {
    fn name(&self) -> &'static str {
        "tamiyo-risk"
    }

    fn summary(&self) -> &'static str {
        "two Tamiyos (one conservative) judge drawn packets that cross every risk gate, with a drawn catalog \
         and Urza outages; an oracle re-derives every veto, event and figure"
    }

    fn world_config(&self) -> WorldConfig {
        WorldConfig {
            max_latency: Duration::from_millis(2),
            duration: Duration::from_secs(30),
            ..WorldConfig::default()
        }
    }

    fn populate(&self, world: &mut World) {
        let plan = Plan::draw(&world.rng().child("plan"), &Self::config(Vec::new(), false));
        let blueprints = plan.rotation.clone();
        let normal = serve(world, TAMIYO, Self::config(blueprints.clone(), false), &plan.catalog);
        let careful = serve(world, CAREFUL, Self::config(blueprints, true), &plan.catalog);
        let (skew, rng) = (world.clock_skew(TOLARIA), world.rng().child(TOLARIA));
        world.client(TOLARIA, async move {
            let mut to_normal = tamiyo_client_at(TAMIYO, sim_clock(), skew.clone(), &rng.child(TAMIYO), Planted::NONE)?;
            let mut to_careful = tamiyo_client_at(CAREFUL, sim_clock(), skew, &rng.child(CAREFUL), Planted::NONE)?;
            let (mut normal_decisions, mut careful_decisions) = (Vec::new(), Vec::new());
            for (packet, delay) in &plan.steps {
                normal.delay.set(*delay);
                normal_decisions.push(normal.decide(&mut to_normal, packet).await?);
                careful_decisions.push(careful.decide(&mut to_careful, packet).await?);
                tokio::time::sleep(STEP_GAP).await;
            }
            tokio::time::sleep(SETTLE).await;
            normal.attach(&mut normal_decisions);
            careful.attach(&mut careful_decisions);
            judge(&plan, [(TAMIYO, &normal_decisions, false), (CAREFUL, &careful_decisions, true)])?;
            Ok(())
        });
    }
}

/// Runs the oracle over each Tamiyo's decisions, in order.
fn judge(plan: &Plan, tamiyos: [(&str, &[Decision], bool); 2]) -> Result<(), Violation> {
    let catalog: BTreeMap<String, BlueprintMetadata> =
        plan.catalog.iter().map(|metadata| (metadata.blueprint_id.clone(), metadata.clone())).collect();
    let config = TamiyoRiskScenario::config(Vec::new(), false);
    let timeouts = (config.metadata_timeout, config.step_timeout);
    for (host, decisions, conservative) in tamiyos {
        let mut oracle = RiskOracle::new(&config.risk, timeouts, &catalog, conservative);
        for decision in decisions {
            oracle.judge(host, decision)?;
        }
        tracing::info!(target: TRACE_TARGET, host, decisions = decisions.len(), vetoes = ?vetoes(decisions), "tamiyo-risk judged");
    }
    Ok(())
}

/// How many decisions were vetoed for each reason (for the run's log).
fn vetoes(decisions: &[Decision]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for decision in decisions {
        if let Some(reason) = decision.command.annotations.get(esper_core::tamiyo::outcome::RISK_REASON) {
            *counts.entry(reason.clone()).or_default() += 1;
        }
    }
    counts
}

/// What the driver holds of one Tamiyo host: its metadata source's delay and
/// lookup log, and the telemetry it published.
#[derive(Debug, Clone)]
struct Observed {
    delay: LookupDelay,
    fetches: Arc<Mutex<Vec<(String, Duration)>>>,
    telemetry: Arc<Mutex<Vec<TelemetryPacket>>>,
}

impl Observed {
    /// Sends `packet`; returns the decision with the lookups Tamiyo made meanwhile.
    async fn decide(
        &self,
        client: &mut TamiyoClient<TurmoilConnector>,
        packet: &SystemStatePacket,
    ) -> Result<Decision, String> {
        std::mem::take(&mut *lock(&self.fetches));
        let step = packet.global_step;
        let command = client.request(packet).await.map_err(|error| format!("step {step}: {error}"))?;
        let fetches = std::mem::take(&mut *lock(&self.fetches));
        Ok(Decision { packet: packet.clone(), command, fetches, telemetry: Vec::new() })
    }

    /// Gives each decision the telemetry packets published for its step
    /// (`tamiyo-s<step>`, or its parts `tamiyo-s<step>-p<n>`).
    fn attach(&self, decisions: &mut [Decision]) {
        let telemetry = lock(&self.telemetry);
        for decision in decisions {
            let id = format!("tamiyo-s{}", decision.packet.global_step);
            let of_step = |packet: &&TelemetryPacket| {
                packet.packet_id.strip_prefix(id.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with("-p"))
            };
            decision.telemetry = telemetry.iter().filter(of_step).cloned().collect();
        }
    }
}

/// Registers the Tamiyo called `name` (real service, signed RPC, reports kept in
/// memory) asking `catalog` through a logged source; returns what the driver sees of it.
fn serve(world: &mut World, name: &'static str, config: TamiyoConfig, catalog: &[BlueprintMetadata]) -> Observed {
    let catalog = BlueprintCatalog::new(catalog.iter().cloned());
    let observed = Observed { delay: catalog.delay().clone(), fetches: Arc::default(), telemetry: Arc::default() };
    let lives = Incarnations::new(world.rng().child(name));
    let (fetches, telemetry) = (Arc::clone(&observed.fetches), Arc::clone(&observed.telemetry));
    world.host(name, move || {
        let life = lives.next();
        let source = LoggedSource { catalog: catalog.clone(), fetches: Arc::clone(&fetches) };
        let (config, mut recorder) = (config.clone(), Recorder(Arc::clone(&telemetry)));
        async move {
            let listener = TurmoilConnector.bind(TAMIYO_PORT).await?;
            let clock = sim_clock();
            let sink = MemoryFieldReportSink::default();
            let ids = life.stream("command_ids");
            let mut service = TamiyoService::new(config, source, sink, move || clock.now_ms(), ids);
            let stopped = serve_tamiyo(listener, &mut service, rpc_config()?, RpcStats::default(), &mut recorder).await;
            Err(stopped.into())
        }
    });
    observed
}

/// The catalog, noting every lookup it receives (and the delay it was set to)
/// before answering: how the oracle learns what the metadata client did.
#[derive(Debug, Clone)]
struct LoggedSource {
    catalog: BlueprintCatalog,
    fetches: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl BlueprintMetadataSource for LoggedSource {
    async fn fetch(&self, blueprint_id: &str) -> Option<BlueprintMetadata> {
        lock(&self.fetches).push((blueprint_id.to_owned(), self.catalog.delay().get()));
        self.catalog.fetch(blueprint_id).await
    }
}

/// Tamiyo's telemetry port: keeps every packet for the oracle.
struct Recorder(Arc<Mutex<Vec<TelemetryPacket>>>);

impl TelemetryPort for Recorder {
    async fn publish_telemetry(&mut self, packet: &TelemetryPacket) -> Result<(), PortError> {
        lock(&self.0).push(packet.clone());
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
