//! The Tamiyo RPC server.
//!
//! The service is one state machine (policy history, conservative mode, breaker), so
//! it is owned by a single loop: connection tasks only delimit frames and hand each
//! one to that loop over a channel, with a oneshot for the answer. One verifier
//! therefore sees every nonce, whichever connection it came on, and decisions are made
//! in arrival order.
//!
//! Slots are bounded (`max_connections`) and cannot be held by peers that send
//! nothing: a connection that delivers no whole frame within `read_timeout` is
//! closed, and at the cap a new connection evicts the one idle longest, so a flood
//! of idle sockets cannot lock Tolaria out.
//!
//! Tamiyo's per-step telemetry leaves with each answer: after replying, the loop
//! drains the service's outbox into a bounded queue, and a publisher running
//! beside the loop sends the queue to the telemetry port (Oona's telemetry stream,
//! or Weatherlight's hub). A slow or unreachable bus therefore never delays a
//! decision; when the queue is full the packet is dropped and counted
//! (`telemetry_dropped`), and a packet the port refuses is counted too
//! (`telemetry_failed`).

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::leyline::{SystemStatePacket, TelemetryPacket, Verifier};
use crate::net::framed::{FramedError, read_frame, write_frame};
use crate::net::{Listener, Stream};
use crate::tolaria::ports::TelemetryPort;

use super::super::metadata::BlueprintMetadataSource;
use super::super::service::TamiyoService;
use super::super::sink::FieldReportSink;
use super::{RpcConfig, RpcError, RpcStats, seal, seal_refusal};

/// What a connection task tells the serving loop.
#[derive(Debug)]
enum ConnectionMessage {
    /// A delimited frame from connection `id`, to be answered on `reply`.
    Request { id: u64, frame: Vec<u8>, reply: oneshot::Sender<Reply> },
    /// Connection `id` ended, and why.
    Closed { id: u64, ended: Ended },
}

/// Why a connection task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The peer hung up, the socket failed, or a refusal closed it.
    Normally,
    /// A frame that could not be delimited (oversized, cut short).
    Framing(&'static str),
    /// No whole frame within the read timeout.
    TimedOut,
    /// The serving loop evicted it to make room.
    Evicted,
}

/// The serving loop's view of one open connection.
#[derive(Debug)]
struct Open {
    /// When it was accepted or last delivered a frame.
    last_active: Instant,
    /// Dropping or sending on it tells the connection task to close.
    evict: oneshot::Sender<()>,
}

/// Every open connection, by id (ids are handed out in accept order).
#[derive(Debug, Default)]
struct Slots {
    open: BTreeMap<u64, Open>,
    next_id: u64,
}

impl Slots {
    /// Makes room for one more under `max`: `Some(false)` if there was room,
    /// `Some(true)` after evicting the connection idle longest (the oldest on a
    /// tie), `None` if there was nothing to evict.
    fn make_room(&mut self, max: usize) -> Option<bool> {
        if self.open.len() < max {
            return Some(false);
        }
        let (&idle_longest, _) = self.open.iter().min_by_key(|(id, open)| (open.last_active, **id))?;
        let evicted = self.open.remove(&idle_longest)?;
        // The task may have ended already; then there is nothing to tell it.
        let _ = evicted.evict.send(());
        Some(true)
    }

    fn admit(&mut self, now: Instant) -> (u64, oneshot::Receiver<()>) {
        let (evict, evicted) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(id, Open { last_active: now, evict });
        (id, evicted)
    }
}

/// The answer to one frame.
#[derive(Debug)]
struct Reply {
    frame: Vec<u8>,
    /// Close the connection after sending (the request was refused).
    close: bool,
}

/// Serves `service` on `listener` until accepting fails; returns that error.
///
/// The service is borrowed, not owned, so the caller can inspect it (field reports,
/// counters) after dropping this future. `stats` is updated as requests are served.
/// Each answered step's telemetry goes to `telemetry` (see the module docs).
pub async fn serve_tamiyo<L, M, S, P>(
    listener: L,
    service: &mut TamiyoService<M, S>,
    config: RpcConfig,
    stats: RpcStats,
    telemetry: &mut P,
) -> io::Error
where
    L: Listener,
    M: BlueprintMetadataSource,
    S: FieldReportSink,
    P: TelemetryPort,
{
    let (queued, to_publish) = mpsc::channel(service.config().telemetry_outbox_capacity);
    let serving = serve_requests(listener, service, config, stats.clone(), queued);
    // The publisher ends only once the serving loop has dropped the queue's sender,
    // that is after it returned; `biased` takes the serving loop's error first.
    tokio::select! {
        biased;
        error = serving => error,
        () = publish_queued(to_publish, telemetry, &stats) => io::Error::other("Tamiyo's telemetry publisher ended"),
    }
}

/// Sends each queued packet to `telemetry`, counting the ones it refuses, until
/// the queue's sender is dropped.
async fn publish_queued<P: TelemetryPort>(
    mut to_publish: mpsc::Receiver<TelemetryPacket>,
    telemetry: &mut P,
    stats: &RpcStats,
) {
    while let Some(packet) = to_publish.recv().await {
        if let Err(error) = telemetry.publish_telemetry(&packet).await {
            tracing::warn!(%error, packet_id = %packet.packet_id, "tamiyo.telemetry_failed");
            stats.update(|c| c.telemetry_failed += 1);
        }
    }
}

/// Queues the service's drained telemetry for the publisher, dropping (and
/// counting) what does not fit.
fn queue_telemetry(packets: Vec<TelemetryPacket>, queued: &mpsc::Sender<TelemetryPacket>, stats: &RpcStats) {
    for packet in packets {
        if let Err(refused) = queued.try_send(packet) {
            let packet = refused.into_inner();
            tracing::warn!(packet_id = %packet.packet_id, "tamiyo.telemetry_dropped");
            stats.update(|c| c.telemetry_dropped += 1);
        }
    }
}

/// The serving loop proper: accepts, answers in arrival order, and queues each
/// answer's telemetry on `queued`.
async fn serve_requests<L, M, S>(
    mut listener: L,
    service: &mut TamiyoService<M, S>,
    config: RpcConfig,
    stats: RpcStats,
    queued: mpsc::Sender<TelemetryPacket>,
) -> io::Error
where
    L: Listener,
    M: BlueprintMetadataSource,
    S: FieldReportSink,
{
    assert!(config.max_connections > 0, "the Tamiyo server must accept at least one connection");
    let mut verifier = Verifier::new(config.key.clone(), config.verify);
    let (sender, mut receiver) = mpsc::channel(config.max_connections);
    let mut slots = Slots::default();
    let limits = ConnectionLimits { max_frame_bytes: config.max_frame_bytes, read_timeout: config.read_timeout };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => return error,
                };
                match slots.make_room(config.max_connections) {
                    Some(false) => {}
                    Some(true) => {
                        tracing::warn!(peer = peer.as_str(), "tamiyo.rpc.idle_connection_evicted");
                        stats.update(|c| c.connections_evicted += 1);
                    }
                    None => {
                        tracing::warn!(peer = peer.as_str(), "tamiyo.rpc.connection_refused");
                        stats.update(|c| c.connections_refused += 1);
                        continue;
                    }
                }
                let (id, evicted) = slots.admit(Instant::now());
                stats.update(|c| c.connections_accepted += 1);
                tokio::spawn(serve_connection(stream, id, sender.clone(), evicted, limits));
            }
            Some(message) = receiver.recv() => match message {
                ConnectionMessage::Request { id, frame, reply } => {
                    if let Some(open) = slots.open.get_mut(&id) {
                        open.last_active = Instant::now();
                    }
                    let answer = answer(service, &mut verifier, &config, &stats, &frame).await;
                    // The connection may be gone; its task then ends on its own.
                    let _ = reply.send(answer);
                    queue_telemetry(service.drain_telemetry(), &queued, &stats);
                }
                ConnectionMessage::Closed { id, ended } => {
                    slots.open.remove(&id);
                    count_end(&stats, ended);
                }
            },
        }
    }
}

/// Counts (and logs) how a connection ended, where that is news.
fn count_end(stats: &RpcStats, ended: Ended) {
    match ended {
        Ended::Normally | Ended::Evicted => {}
        Ended::Framing(kind) => {
            tracing::warn!(kind, "tamiyo.rpc.bad_frame");
            stats.update(|c| c.framing_errors += 1);
        }
        Ended::TimedOut => {
            tracing::warn!("tamiyo.rpc.read_timeout");
            stats.update(|c| c.connections_timed_out += 1);
        }
    }
}

/// What every connection task is bounded by.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    max_frame_bytes: u32,
    read_timeout: Duration,
}

/// Verifies and decodes one request frame and answers it (see the module docs).
async fn answer<M, S>(
    service: &mut TamiyoService<M, S>,
    verifier: &mut Verifier,
    config: &RpcConfig,
    stats: &RpcStats,
    frame: &[u8],
) -> Reply
where
    M: BlueprintMetadataSource,
    S: FieldReportSink,
{
    let verified = verifier.verify(frame, service.now_ms());
    let verify_counters = verifier.counters();
    stats.update(|c| c.verify = verify_counters);
    let request = verified.map_err(RpcError::from).and_then(|envelope| Ok(envelope.open::<SystemStatePacket>()?));
    match request {
        Ok(packet) => {
            let command = service.evaluate(&packet).await;
            stats.update(|c| c.requests_answered += 1);
            let now_ms = service.now_ms();
            Reply { frame: seal(&config.key, &command, now_ms, service.rng()), close: false }
        }
        Err(error) => {
            tracing::warn!(%error, "tamiyo.rpc.request_refused");
            stats.update(|c| c.requests_refused += 1);
            let now_ms = service.now_ms();
            Reply { frame: seal_refusal(&config.key, &error.to_string(), now_ms, service.rng()), close: true }
        }
    }
}

/// Reads frames from one connection and writes the serving loop's answers, until
/// the peer stops, a frame is bad or late, or the loop evicts it.
async fn serve_connection<St: Stream>(
    mut stream: St,
    id: u64,
    requests: mpsc::Sender<ConnectionMessage>,
    evicted: oneshot::Receiver<()>,
    limits: ConnectionLimits,
) {
    // Only an eviction the loop sends closes the connection here; a loop that is
    // gone (its sender dropped) is noticed at the next request, as before.
    let ended = tokio::select! {
        ended = exchange_frames(&mut stream, id, &requests, limits) => ended,
        Ok(()) = evicted => Ended::Evicted,
    };
    // If the serving loop is gone there is nobody left to tell.
    let _ = requests.send(ConnectionMessage::Closed { id, ended }).await;
}

async fn exchange_frames<St: Stream>(
    stream: &mut St,
    id: u64,
    requests: &mpsc::Sender<ConnectionMessage>,
    limits: ConnectionLimits,
) -> Ended {
    loop {
        let read = tokio::time::timeout(limits.read_timeout, read_frame(stream, limits.max_frame_bytes)).await;
        let frame = match read {
            Err(_elapsed) => return Ended::TimedOut,
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return Ended::Normally,
            Ok(Err(error)) => return framing_end(&error),
        };
        let (reply, answered) = oneshot::channel();
        if requests.send(ConnectionMessage::Request { id, frame, reply }).await.is_err() {
            return Ended::Normally;
        }
        let Ok(answer) = answered.await else { return Ended::Normally };
        if let Err(error) = write_frame(stream, &answer.frame, limits.max_frame_bytes).await {
            return framing_end(&error);
        }
        if answer.close {
            return Ended::Normally;
        }
    }
}

/// A framing error is news; a socket error is the peer's business.
fn framing_end(error: &FramedError) -> Ended {
    match error {
        FramedError::Oversized { .. } | FramedError::ShortPrefix { .. } | FramedError::ShortPayload { .. } => {
            Ended::Framing(error.kind())
        }
        FramedError::Io(_) => Ended::Normally,
    }
}
