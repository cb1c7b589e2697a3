//! turmoil's simulated TCP behind `esper-core`'s [`Connector`] seam.
//!
//! Every stream the connector hands out is a [`TracedStream`]: it records each
//! write as a `send` and each read as a `deliver` (target `esper_sim::net`, level
//! TRACE), so the trace shows who talked to whom and when — the arrows of
//! `esper run --timeline`. A message is named by its stream and the byte offset of
//! its first byte in that direction: the sender counts the bytes it wrote, the
//! receiver the bytes it read, and TCP's ordering makes the two counts agree, so
//! both ends name the same message with no state shared between them.
//!
//! ```text
//! 0.012000000 tolaria TRACE esper_sim::net: message=send stream=tolaria:49152>redis:6379 offset=0 bytes=42
//! 0.015000000 redis TRACE esper_sim::net: message=deliver stream=tolaria:49152>redis:6379 offset=0 bytes=42
//! ```
//!
//! A read may return less or more than one write: the `deliver` of bytes
//! `[offset, offset + bytes)` delivers every message whose last byte lies in that
//! range. Only the sim's connector is traced; the real profile's
//! [`esper_core::net::TokioConnector`] is not.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use esper_core::net::{Connector, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use turmoil::net::{TcpListener, TcpStream};

/// The trace target of message sends and deliveries.
pub const NET_TARGET: &str = "esper_sim::net";

/// Connects through the simulated network of the current turmoil host. Usable only
/// from code running inside a [`crate::World`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilConnector;

impl Connector for TurmoilConnector {
    type Stream = TracedStream;
    type Listener = TurmoilListener;

    async fn connect(&self, host: &str, port: u16) -> io::Result<TracedStream> {
        TracedStream::new(TcpStream::connect((host, port)).await?)
    }

    async fn bind(&self, port: u16) -> io::Result<TurmoilListener> {
        Ok(TurmoilListener(TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?))
    }
}

/// A simulated listening socket.
pub struct TurmoilListener(TcpListener);

impl std::fmt::Debug for TurmoilListener {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_tuple("TurmoilListener").field(&self.0.local_addr().ok()).finish()
    }
}

impl Listener for TurmoilListener {
    type Stream = TracedStream;

    async fn accept(&mut self) -> io::Result<(TracedStream, String)> {
        let (stream, peer) = self.0.accept().await?;
        Ok((TracedStream::new(stream)?, peer.to_string()))
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

/// A simulated TCP stream that traces what it sends and delivers (see the module docs).
#[derive(Debug)]
pub struct TracedStream {
    inner: TcpStream,
    /// `<local host>:<port>><peer host>:<port>`: the name of the outgoing direction.
    outgoing: String,
    /// The same, reversed: the name of the incoming direction.
    incoming: String,
    /// Bytes written so far: the offset of the next message sent.
    sent: u64,
    /// Bytes read so far: the offset of the next byte delivered.
    received: u64,
}

impl TracedStream {
    fn new(inner: TcpStream) -> io::Result<Self> {
        let (local, peer) = (endpoint(inner.local_addr()?), endpoint(inner.peer_addr()?));
        Ok(Self {
            inner,
            outgoing: format!("{local}>{peer}"),
            incoming: format!("{peer}>{local}"),
            sent: 0,
            received: 0,
        })
    }
}

/// `host:port`, naming the host as the world does (its IP if turmoil has no name for it).
fn endpoint(address: SocketAddr) -> String {
    let host = turmoil::reverse_lookup(address.ip()).unwrap_or_else(|| address.ip().to_string());
    format!("{host}:{}", address.port())
}

impl AsyncRead for TracedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(context, buffer);
        let bytes = (buffer.filled().len() - before) as u64;
        if bytes > 0 {
            tracing::trace!(target: NET_TARGET, stream = %self.incoming, offset = self.received, bytes, "deliver");
            self.received += bytes;
        }
        polled
    }
}

impl AsyncWrite for TracedStream {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(context, data);
        if let Poll::Ready(Ok(written)) = polled
            && written > 0
        {
            let bytes = written as u64;
            tracing::trace!(target: NET_TARGET, stream = %self.outgoing, offset = self.sent, bytes, "send");
            self.sent += bytes;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}
