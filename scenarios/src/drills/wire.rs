//! Telemetry as it reached Redis, and the `telemetry-budget` invariant on it.
//!
//! The budget is judged on what the simulated Redis holds, not on what Tolaria's
//! packet builder produced: a packet that skipped the builder, or grew on its way
//! out, is caught where a consumer would meet it. After the run a reader asks the
//! server for every entry of the telemetry streams with `XRANGE - +` (a plain
//! client command rather than a hook in the simulated server, so the check reads
//! the streams exactly as Nissa would, and needs nothing from the simulator), opens
//! each frame with the bus key, and measures the telemetry packet it carries.

use esper_core::leyline::{
    BusEnvelope, BusMessageType, Contract, SigningKey, TELEMETRY_BYTE_LIMIT, TelemetryPacket, Verifier, VerifyPolicy,
};
use esper_core::net::Connector;
use esper_core::oona::{FRAME_FIELD, entries};
use esper_sim::{Invariant, Violation};

use crate::sim::oona_checks::plain_connection;

/// One telemetry packet as a stream entry holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct WireTelemetry {
    pub stream: String,
    /// The entry's stream id.
    pub id: String,
    /// Encoded size of the telemetry packet inside the entry's envelope.
    pub payload_bytes: usize,
    pub packet: TelemetryPacket,
}

/// Where to read from.
#[derive(Debug, Clone)]
pub struct WireReader<C> {
    pub connector: C,
    pub host: String,
    pub port: u16,
    /// The bus key the frames are signed with.
    pub key: SigningKey,
    /// Unix ms now, to judge the frames' freshness.
    pub now_ms: u64,
}

impl<C: Connector> WireReader<C> {
    /// Every telemetry packet on `streams`, in the order Redis accepted them (by
    /// entry id; entries of different streams in the same millisecond keep the
    /// order of `streams`). Entries carrying other messages are skipped; an entry
    /// that is not a signed frame holding an envelope is an error naming its id.
    pub async fn telemetry(&self, streams: &[&str]) -> Result<Vec<WireTelemetry>, String> {
        let mut connection = plain_connection(&self.connector, &self.host, self.port).await?;
        // Frames are judged once, after the run: freshness is not the question here.
        let policy = VerifyPolicy { freshness_window_ms: u64::MAX / 2, ..VerifyPolicy::default() };
        let mut verifier = Verifier::new(self.key.clone(), policy);
        let mut found = Vec::new();
        for (rank, stream) in streams.iter().enumerate() {
            let reply = redis::cmd("XRANGE")
                .arg(stream)
                .arg("-")
                .arg("+")
                .query_async(&mut connection)
                .await
                .map_err(|error| format!("XRANGE {stream}: {error}"))?;
            for entry in entries(&reply).map_err(|error| format!("XRANGE {stream}: {error}"))? {
                let unreadable = |why: String| format!("entry {} on {stream} is unreadable: {why}", entry.id);
                let frame = entry.field(FRAME_FIELD).ok_or_else(|| unreadable(format!("no `{FRAME_FIELD}` field")))?;
                let envelope = verifier.verify(frame, self.now_ms).map_err(|error| unreadable(error.to_string()))?;
                if envelope.message_type() != BusMessageType::Telemetry {
                    continue;
                }
                let packet = open(&envelope).map_err(unreadable)?;
                let order = (entry_order(&entry.id).ok_or_else(|| unreadable("a malformed id".to_owned()))?, rank);
                let (id, stream, payload_bytes) = (entry.id, (*stream).to_owned(), envelope.payload.len());
                found.push((order, WireTelemetry { stream, id, payload_bytes, packet }));
            }
        }
        found.sort_by_key(|(order, _)| *order);
        Ok(found.into_iter().map(|(_, telemetry)| telemetry).collect())
    }
}

fn open(envelope: &BusEnvelope) -> Result<TelemetryPacket, String> {
    TelemetryPacket::decode_closed(&envelope.payload).map_err(|error| error.to_string())
}

/// `<ms>-<seq>` as numbers, so ids sort as Redis orders them.
fn entry_order(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Every telemetry packet Redis holds fits the 280-byte budget.
pub fn check_budget(telemetry: &[WireTelemetry]) -> Result<(), Violation> {
    match telemetry.iter().find(|entry| entry.payload_bytes > TELEMETRY_BYTE_LIMIT) {
        Some(entry) => Err(Invariant::TelemetryBudget.violated(format!(
            "telemetry entry {} on {} carries a {}-byte packet ({}), over the {TELEMETRY_BYTE_LIMIT}-byte budget",
            entry.id, entry.stream, entry.payload_bytes, entry.packet.packet_id
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use esper_core::leyline::signing::sign;
    use esper_core::leyline::{MessagePriority, MetricPoint};
    use esper_core::tolaria::ports::TelemetryPort;
    use esper_sim::redis::ServerConfig;
    use esper_sim::{FaultSchedule, Outcome, TraceMode, TurmoilConnector, World};
    use prost::Message;

    use super::*;
    use crate::sim::control_loop::{REDIS, REDIS_PORT, SIM_BUS_SECRET, bus, sim_clock};
    use crate::sim::oona_checks::plain_connection;

    const TELEMETRY_STREAM: &str = "oona.telemetry";

    fn packet(id: &str, metrics: usize) -> TelemetryPacket {
        let metric = |index| MetricPoint::new(format!("tolaria.test.metric_{index}"), 1.0, "ms");
        TelemetryPacket {
            packet_id: id.to_owned(),
            metrics: (0..metrics).map(metric).collect(),
            ..TelemetryPacket::default()
        }
    }

    /// Publishes a packet within budget through Oona, then — when `oversize` —
    /// XADDs a signed over-budget one straight to the stream (no builder, no
    /// Oona), then reads the stream back and judges it.
    fn judge_the_wire(oversize: bool) -> Outcome {
        let mut world = World::new(11, FaultSchedule::new(Vec::new()));
        world.redis(REDIS, REDIS_PORT, ServerConfig::default());
        let rng = world.rng().child("wire");
        world.client("tolaria", publish_and_judge(rng, oversize));
        world.run("wire-budget", TraceMode::Hash).outcome
    }

    async fn publish_and_judge(rng: esper_sim::RngTree, oversize: bool) -> turmoil::Result {
        {
            let mut publisher = bus(&rng, "telemetry")?;
            assert_eq!(publisher.config().telemetry_stream, TELEMETRY_STREAM);
            publisher.publish_telemetry(&packet("small", 2)).await.map_err(|e| e.to_string())?;
            if oversize {
                let large = packet("large", 20);
                assert!(large.encoded_len() > TELEMETRY_BYTE_LIMIT);
                let key = SigningKey::new(SIM_BUS_SECRET.to_vec()).map_err(|e| e.to_string())?;
                let envelope = BusEnvelope::wrap(&large, MessagePriority::Normal);
                let frame = sign(&key, &envelope, sim_clock().now_ms(), &mut rng.stream("raw"));
                let mut raw = plain_connection(&TurmoilConnector, REDIS, REDIS_PORT).await?;
                let xadd = redis::cmd("XADD").arg(TELEMETRY_STREAM).arg("*").arg(FRAME_FIELD).arg(frame).clone();
                let _: String = xadd.query_async(&mut raw).await.map_err(|e| e.to_string())?;
            }
            let key = SigningKey::new(SIM_BUS_SECRET.to_vec()).map_err(|e| e.to_string())?;
            let reader = WireReader {
                connector: TurmoilConnector,
                host: REDIS.to_owned(),
                port: REDIS_PORT,
                key,
                now_ms: sim_clock().now_ms(),
            };
            let telemetry = reader.telemetry(&[TELEMETRY_STREAM]).await?;
            assert_eq!(telemetry.len(), 1 + usize::from(oversize), "every entry read back: {telemetry:?}");
            check_budget(&telemetry)?;
            Ok(())
        }
    }

    #[test]
    fn packets_within_budget_on_the_wire_pass() {
        assert_eq!(judge_the_wire(false), Outcome::Passed);
    }

    #[test]
    fn an_oversize_packet_xadded_past_the_builder_fails_naming_its_entry_and_size() {
        let Outcome::Failed { violation } = judge_the_wire(true) else { panic!("an over-budget entry must fail") };
        assert_eq!(violation.invariant, Invariant::TelemetryBudget, "{violation}");
        let (large, error) = (packet("large", 20).encoded_len(), violation.detail);
        assert!(error.contains(&format!("carries a {large}-byte packet (large)")), "{error}");
        assert!(error.contains("telemetry entry ") && error.contains("on oona.telemetry"), "{error}");
    }

    #[test]
    fn ids_order_numerically() {
        assert!(entry_order("9-2") < entry_order("10-0"));
        assert_eq!(entry_order("12-x"), None);
    }
}
