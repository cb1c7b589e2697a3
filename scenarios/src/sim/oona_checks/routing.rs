//! Where a publish goes: each message type to its stream, and a critical message
//! refused, not dropped, once the outbox of messages not yet durable is full.

use std::time::Duration;

use esper_core::leyline::{BusMessageType, MessagePriority};
use esper_core::net::Connector;
use esper_core::oona::{OonaError, PublishOutcome, StreamConfig, StreamKind};
use redis::aio::MultiplexedConnection;

use super::{BusFixture, CheckResult, envelope, expect, int, quick_config};

/// Esper-Lite's routing of normal-priority messages (reference: "Routing"): state,
/// commands, field reports and BSDS to the normal stream; telemetry, policy
/// updates and emergency signals to their own; kernel requests to the request
/// stream and every kernel answer (ready, error, catalog update) to the reply
/// stream, Esper's one stream for what Esper-Lite splits into ready and errors.
const ROUTES: [(BusMessageType, StreamKind); 13] = [
    (BusMessageType::SystemState, StreamKind::Normal),
    (BusMessageType::AdaptationCommand, StreamKind::Normal),
    (BusMessageType::FieldReport, StreamKind::Normal),
    (BusMessageType::BsdsIssued, StreamKind::Normal),
    (BusMessageType::BsdsFailed, StreamKind::Normal),
    (BusMessageType::BenchmarkReport, StreamKind::Normal),
    (BusMessageType::Telemetry, StreamKind::Telemetry),
    (BusMessageType::PolicyUpdate, StreamKind::Policy),
    (BusMessageType::EmergencySignal, StreamKind::Emergency),
    (BusMessageType::KernelPrefetchRequest, StreamKind::KernelRequests),
    (BusMessageType::KernelPrefetchReady, StreamKind::KernelReplies),
    (BusMessageType::KernelPrefetchError, StreamKind::KernelReplies),
    (BusMessageType::KernelCatalogUpdate, StreamKind::KernelReplies),
];

/// Every message type, published at normal priority, lands on the stream
/// [`ROUTES`] names, and each stream then holds exactly the messages routed to it.
pub(super) async fn routes<C: Connector>(fixture: &BusFixture<C>, admin: &mut MultiplexedConnection) -> CheckResult {
    let mut client = fixture.client(quick_config())?;
    for (seq, (message_type, wanted)) in (0..).zip(ROUTES) {
        let outcome = client.publish(&envelope(seq, message_type, MessagePriority::Normal)).await;
        let stream = match outcome.map_err(|error| error.to_string())? {
            PublishOutcome::Published { stream, rerouted: false, .. } => stream,
            other => return Err(format!("{message_type:?} was not published on its own route: {other:?}")),
        };
        expect(&format!("the stream {message_type:?} goes to"), stream, wanted)?;
    }
    let kinds = [
        StreamKind::Normal,
        StreamKind::Emergency,
        StreamKind::Telemetry,
        StreamKind::Policy,
        StreamKind::KernelRequests,
        StreamKind::KernelReplies,
    ];
    for kind in kinds {
        let routed = ROUTES.iter().filter(|(_, stream)| *stream == kind).count() as i64;
        let held = int(admin, redis::cmd("XLEN").arg(kind.name(client.config()))).await?;
        expect(&format!("entries on the {kind:?} stream"), held, routed)?;
    }
    Ok(())
}

/// Critical messages the outbox holds in [`outbox_full`], under a durability
/// window no check outlasts, so none becomes durable while it runs.
const OUTBOX_CAPACITY: usize = 2;

/// Only critical messages wait in the outbox for durability: a normal and a high
/// one (the high one on the emergency stream too) leave it empty. With room for
/// two critical messages not yet known durable, a third is refused with
/// `OutboxFull` (an error the publisher sees, never a silent drop) and is not
/// added to Redis; the two stay held.
pub(super) async fn outbox_full<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
) -> CheckResult {
    let config = StreamConfig {
        outbox_capacity: OUTBOX_CAPACITY,
        durability_window: Duration::from_secs(600),
        ..quick_config()
    };
    let mut client = fixture.client(config)?;
    for (seq, priority) in [(100, MessagePriority::Normal), (101, MessagePriority::High)] {
        let outcome = client.publish(&envelope(seq, BusMessageType::SystemState, priority)).await;
        expect("a publish below critical", matches!(outcome, Ok(PublishOutcome::Published { .. })), true)?;
    }
    expect("held after a normal and a high publish", client.outbox_len(), 0)?;
    let mut outcomes = Vec::new();
    for seq in 0..=OUTBOX_CAPACITY as u64 {
        let critical = envelope(seq, BusMessageType::SystemState, MessagePriority::Critical);
        outcomes.push(match client.publish(&critical).await {
            Ok(PublishOutcome::Published { .. }) => "published".to_owned(),
            Err(OonaError::OutboxFull { capacity }) => format!("refused, outbox of {capacity} full"),
            other => format!("{other:?}"),
        });
    }
    let wanted = ["published".to_owned(), "published".to_owned(), format!("refused, outbox of {OUTBOX_CAPACITY} full")];
    expect("three critical publishes into an outbox of two", outcomes, wanted.to_vec())?;
    expect("held in the outbox", client.outbox_len(), OUTBOX_CAPACITY)?;
    let still_held = client.sync_outbox().await.map_err(|error| format!("sync_outbox: {error}"))?;
    expect("held after a sync inside the durability window", still_held, OUTBOX_CAPACITY)?;
    let emergency = client.config().emergency_stream.clone();
    expect(
        "entries on the emergency stream (one high, two critical)",
        int(admin, redis::cmd("XLEN").arg(&emergency)).await?,
        3,
    )
}

/// Entries published in [`stream_cap`], well past the cap.
const CAPPED_PUBLISHES: u64 = 300;
const STREAM_CAP: u64 = 10;

/// `max_stream_length` trims the normal stream (`XADD … MAXLEN ~`: Redis may keep
/// more than the cap, trimming whole nodes, but not everything) and no other:
/// the emergency stream keeps every entry.
pub(super) async fn stream_cap<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
) -> CheckResult {
    let mut client = fixture.client(StreamConfig { max_stream_length: Some(STREAM_CAP), ..quick_config() })?;
    for seq in 0..CAPPED_PUBLISHES {
        for priority in [MessagePriority::Normal, MessagePriority::Critical] {
            let outcome = client.publish(&envelope(seq, BusMessageType::SystemState, priority)).await;
            expect("a capped publish", matches!(outcome, Ok(PublishOutcome::Published { .. })), true)?;
        }
    }
    let (normal, emergency) = (client.config().normal_stream.clone(), client.config().emergency_stream.clone());
    let kept = int(admin, redis::cmd("XLEN").arg(&normal)).await?;
    if !(STREAM_CAP as i64..CAPPED_PUBLISHES as i64).contains(&kept) {
        return Err(format!(
            "the normal stream capped at ~{STREAM_CAP} holds {kept} of {CAPPED_PUBLISHES} entries; \
             approximate trimming keeps at least the cap and drops something"
        ));
    }
    expect(
        "the emergency stream is never capped",
        int(admin, redis::cmd("XLEN").arg(&emergency)).await?,
        CAPPED_PUBLISHES as i64,
    )
}
