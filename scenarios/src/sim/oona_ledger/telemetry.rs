//! `telemetry-complete` in the oona-ledger drill: the publisher's own counters
//! reach Nissa.
//!
//! Once the ledger's traffic is done and every fault is over (Redis can no longer
//! lose what it acknowledges), the publisher sends its snapshot
//! ([`OonaClient::snapshot_points`]: `oona.queue.depth`, reroutes, drops and
//! every other counter) through the telemetry builder, as Tolaria and
//! Weatherlight send theirs. The telemetry Redis then holds is read back and fed
//! to a real Nissa ([`check_complete`]): every counter above zero must show its
//! value under `source="oona"`. The one excused shortfall is a snapshot packet the
//! bus itself refused (counted); the state messages the ledger dropped by
//! backpressure are not telemetry and excuse nothing. The counters judged are
//! those the snapshot was taken from: publishing it moves `publish_total` once
//! more, which no snapshot can carry about itself.

use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::leyline::{SigningKey, TelemetryLevel, TelemetryPacket, Timestamp};
use esper_core::oona::{OonaClient, OonaMetrics, SNAPSHOT_SOURCE, snapshot_packets};
use esper_core::planted::Planted;
use esper_core::tolaria::ports::TelemetryPort as _;
use esper_sim::{Invariant, TurmoilConnector};
use rand_chacha::ChaCha8Rng;
use tokio::time::sleep;

use crate::drills::complete::{Produced, check_complete};
use crate::drills::wire::WireReader;

trace_target!("oona_ledger::telemetry");

/// Attempts at one snapshot packet while Redis recovers from the last fault.
const PUBLISH_ATTEMPTS: u32 = 50;
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The snapshot's packet id (a split snapshot's parts add `-p<n>`).
const SNAPSHOT_ID: &str = "oona-ledger-publisher";

/// Where the drill's Redis is and how its frames are signed.
pub(super) struct Bus<'a> {
    pub client: &'a mut OonaClient<TurmoilConnector, ChaCha8Rng>,
    pub host: &'a str,
    pub port: u16,
    pub key: SigningKey,
    pub clock: UnixClock,
}

/// Sends the snapshot at sim time `quiet_at` (or now, if later) and checks it
/// reached Nissa whole; see the module docs.
pub(super) async fn report_and_check(bus: Bus<'_>, quiet_at: Duration, planted: Planted) -> turmoil::Result {
    let now = turmoil::sim_elapsed().unwrap_or_default();
    sleep(quiet_at.saturating_sub(now)).await;
    let points = bus.client.snapshot_points().await;
    let counters = bus.client.metrics_snapshot();
    let taken_ms = bus.clock.now_ms();
    let mut refused = 0;
    for packet in snapshot_packets(SNAPSHOT_ID, points, taken_ms, planted) {
        refused += publish(bus.client, &packet).await;
    }
    let reader = WireReader {
        connector: TurmoilConnector,
        host: bus.host.to_owned(),
        port: bus.port,
        key: bus.key,
        now_ms: bus.clock.now_ms(),
    };
    let config = bus.client.config();
    let wire = reader.telemetry(&[&config.telemetry_stream, &config.emergency_stream]).await?;
    let packets: Vec<TelemetryPacket> = wire
        .into_iter()
        .map(|entry| entry.packet)
        .filter(|packet| packet.source_subsystem == SNAPSHOT_SOURCE)
        .collect();
    check_headers(&packets, taken_ms).map_err(|detail| Invariant::TelemetryComplete.violated(detail))?;
    let drops = OonaMetrics { publish_dropped: refused, ..OonaMetrics::default() };
    let produced = Produced { source: SNAPSHOT_SOURCE, counters: &counters.named(), bus: drops };
    check_complete(&packets, &produced, bus.clock)?;
    Ok(())
}

/// Every snapshot packet Nissa reads names the snapshot (`<id>` or its parts,
/// `<id>-p<n>`; a retried publish may deliver one twice), carries the time it
/// was taken and says it is information: Nissa keys its freshness and its event
/// log on those fields, and a packet without them is a snapshot nobody can place.
fn check_headers(packets: &[TelemetryPacket], taken_ms: u64) -> Result<(), String> {
    for packet in packets {
        let id = packet.packet_id.as_str();
        let named = id == SNAPSHOT_ID
            || id
                .strip_prefix(SNAPSHOT_ID)
                .and_then(|rest| rest.strip_prefix("-p"))
                .is_some_and(|part| part.parse::<u32>().is_ok());
        if !named {
            return Err(format!("snapshot packet id {id:?} is not {SNAPSHOT_ID:?} or a part of it"));
        }
        if packet.timestamp != Some(Timestamp::from_millis(taken_ms)) {
            return Err(format!("snapshot packet {id} is stamped {:?}, taken at {taken_ms} ms", packet.timestamp));
        }
        if packet.level() != TelemetryLevel::Info {
            return Err(format!("snapshot packet {id} has level {:?}, not INFO", packet.level()));
        }
    }
    Ok(())
}

/// Publishes `packet`, retrying while Redis is unreachable; 1 when the bus refused
/// it (a counted drop), else 0.
async fn publish(client: &mut OonaClient<TurmoilConnector, ChaCha8Rng>, packet: &TelemetryPacket) -> u64 {
    for _ in 1..PUBLISH_ATTEMPTS {
        match client.publish_telemetry(packet).await {
            Ok(()) => return 0,
            Err(error) => {
                tracing::info!(target: TRACE_TARGET, %error, packet_id = %packet.packet_id, "oona snapshot not published; retrying");
                sleep(RETRY_PAUSE).await;
            }
        }
    }
    u64::from(client.publish_telemetry(packet).await.is_err())
}
