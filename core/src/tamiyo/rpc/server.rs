//! The Tamiyo RPC server.
//!
//! The service is one state machine (policy history, conservative mode, breaker), so
//! it is owned by a single loop: connection tasks only delimit frames and hand each
//! one to that loop over a channel, with a oneshot for the answer. One verifier
//! therefore sees every nonce, whichever connection it came on, and decisions are made
//! in arrival order.

use std::io;

use tokio::sync::{mpsc, oneshot};

use crate::leyline::{SystemStatePacket, Verifier};
use crate::net::framed::{FramedError, read_frame, write_frame};
use crate::net::{Listener, Stream};

use super::super::metadata::BlueprintMetadataSource;
use super::super::service::TamiyoService;
use super::super::sink::FieldReportSink;
use super::{RpcConfig, RpcError, RpcStats, seal, seal_refusal};

/// What a connection task tells the serving loop.
#[derive(Debug)]
enum ConnectionMessage {
    /// A delimited frame, to be answered on `reply`.
    Request { frame: Vec<u8>, reply: oneshot::Sender<Reply> },
    /// The connection ended, with the framing error that ended it, if any.
    Closed { framing_error: Option<&'static str> },
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
pub async fn serve_tamiyo<L, M, S>(
    mut listener: L,
    service: &mut TamiyoService<M, S>,
    config: RpcConfig,
    stats: RpcStats,
) -> io::Error
where
    L: Listener,
    M: BlueprintMetadataSource,
    S: FieldReportSink,
{
    assert!(config.max_connections > 0, "the Tamiyo server must accept at least one connection");
    let mut verifier = Verifier::new(config.key.clone(), config.verify);
    let (sender, mut receiver) = mpsc::channel(config.max_connections);
    let mut open_connections = 0_usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => return error,
                };
                if open_connections >= config.max_connections {
                    tracing::warn!(peer = peer.as_str(), open_connections, "tamiyo.rpc.connection_refused");
                    stats.update(|c| c.connections_refused += 1);
                    continue;
                }
                open_connections += 1;
                stats.update(|c| c.connections_accepted += 1);
                tokio::spawn(serve_connection(stream, sender.clone(), config.max_frame_bytes));
            }
            Some(message) = receiver.recv() => match message {
                ConnectionMessage::Request { frame, reply } => {
                    let answer = answer(service, &mut verifier, &config, &stats, &frame).await;
                    // The connection may be gone; its task then ends on its own.
                    let _ = reply.send(answer);
                }
                ConnectionMessage::Closed { framing_error } => {
                    open_connections = open_connections.saturating_sub(1);
                    if let Some(kind) = framing_error {
                        tracing::warn!(kind, "tamiyo.rpc.bad_frame");
                        stats.update(|c| c.framing_errors += 1);
                    }
                }
            },
        }
    }
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

/// Reads frames from one connection and writes the serving loop's answers.
async fn serve_connection<St: Stream>(mut stream: St, requests: mpsc::Sender<ConnectionMessage>, max_frame_bytes: u32) {
    let ended = exchange_frames(&mut stream, &requests, max_frame_bytes).await;
    let framing_error = match ended {
        Err(
            error
            @ (FramedError::Oversized { .. } | FramedError::ShortPrefix { .. } | FramedError::ShortPayload { .. }),
        ) => Some(error.kind()),
        Ok(()) | Err(FramedError::Io(_)) => None,
    };
    // If the serving loop is gone there is nobody left to tell.
    let _ = requests.send(ConnectionMessage::Closed { framing_error }).await;
}

async fn exchange_frames<St: Stream>(
    stream: &mut St,
    requests: &mpsc::Sender<ConnectionMessage>,
    max_frame_bytes: u32,
) -> Result<(), FramedError> {
    loop {
        let Some(frame) = read_frame(stream, max_frame_bytes).await? else { return Ok(()) };
        let (reply, answered) = oneshot::channel();
        if requests.send(ConnectionMessage::Request { frame, reply }).await.is_err() {
            return Ok(());
        }
        let Ok(answer) = answered.await else { return Ok(()) };
        write_frame(stream, &answer.frame, max_frame_bytes).await?;
        if answer.close {
            return Ok(());
        }
    }
}
