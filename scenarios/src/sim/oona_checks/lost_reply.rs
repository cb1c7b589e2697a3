//! `lost_reply`: a command that reached Redis but whose reply never came back.
//!
//! The one fault after which a client cannot know whether its write landed: Redis
//! ran the command, then the connection broke before the answer arrived. Oona's
//! link sends a read-only command once more on a new connection (asking again
//! changes nothing) and never a write (an `XADD` sent again is a second entry).
//! Partitions and crashes in the drills seldom break a connection in exactly that
//! gap, so the check makes the gap itself, at the connector seam: [`LostReply`]
//! passes bytes through until it is armed with a command name, then breaks the
//! connection that sent that command as soon as the reply's first bytes arrive,
//! and swallows them. Because it waits for the reply, the command certainly ran —
//! against the simulated Redis and a real `redis-server` alike.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use esper_core::leyline::{BusMessageType, MessagePriority};
use esper_core::net::{Connector, Listener};
use esper_core::oona::PublishOutcome;
use redis::aio::MultiplexedConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{BusFixture, CheckResult, envelope, expect, int, quick_config};

/// A [`Connector`] whose connections lose one armed command's reply.
#[derive(Debug, Clone)]
pub struct LostReply<C> {
    inner: C,
    /// The command whose reply the next connection to send it loses; taken by
    /// that connection, so one arming loses one reply.
    armed: Arc<Mutex<Option<&'static str>>>,
}

impl<C> LostReply<C> {
    /// Passes everything through until [`LostReply::arm`].
    pub fn new(inner: C) -> Self {
        Self { inner, armed: Arc::default() }
    }

    /// The next `command` (its name as sent, such as `XADD`) loses its reply.
    pub fn arm(&self, command: &'static str) {
        *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(command);
    }

    /// Whether an arming is still waiting for its command.
    pub fn is_armed(&self) -> bool {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }
}

impl<C: Connector> Connector for LostReply<C> {
    type Stream = CutStream<C::Stream>;
    type Listener = CutListener<C::Listener>;

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::Stream> {
        let inner = self.inner.connect(host, port).await?;
        Ok(CutStream { inner, armed: Arc::clone(&self.armed), state: Cut::Open })
    }

    async fn bind(&self, port: u16) -> io::Result<Self::Listener> {
        Ok(CutListener(self.inner.bind(port).await?))
    }
}

/// The trait asks for a listener of the same streams; accepted connections are
/// never armed (the check cuts only what its client sends).
#[derive(Debug)]
pub struct CutListener<L>(L);

impl<L: Listener> Listener for CutListener<L> {
    type Stream = CutStream<L::Stream>;

    async fn accept(&mut self) -> io::Result<(Self::Stream, String)> {
        let (inner, peer) = self.0.accept().await?;
        Ok((CutStream { inner, armed: Arc::default(), state: Cut::Open }, peer))
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

/// Where a [`CutStream`] is in losing a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Passing bytes through.
    Open,
    /// Sent the armed command; the first bytes of its reply break the connection.
    AwaitingReply,
    /// Broken: every read and write fails, as on a reset connection.
    Broken,
}

/// A stream of [`LostReply`].
#[derive(Debug)]
pub struct CutStream<S> {
    inner: S,
    armed: Arc<Mutex<Option<&'static str>>>,
    state: Cut,
}

impl<S> CutStream<S> {
    /// Whether `sent` is a request for the armed command (RESP: an array whose
    /// first bulk string is the command's name).
    fn sends_armed(&self, sent: &[u8]) -> bool {
        let Some(command) = *self.armed.lock().unwrap_or_else(PoisonError::into_inner) else { return false };
        let name = format!("${}\r\n{command}\r\n", command.len());
        sent.starts_with(b"*") && sent.windows(name.len()).any(|window| window == name.as_bytes())
    }

    /// The armed command went out on this connection: its reply is the one lost.
    fn disarm(&mut self) {
        *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.state = Cut::AwaitingReply;
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "lost_reply: connection broken before the reply")
}

impl<S: AsyncRead + Unpin> AsyncRead for CutStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.state {
            Cut::Open => Pin::new(&mut self.inner).poll_read(cx, buf),
            Cut::Broken => Poll::Ready(Err(reset())),
            Cut::AwaitingReply => {
                let mut scratch = [0_u8; 256];
                let mut swallowed = ReadBuf::new(&mut scratch);
                match Pin::new(&mut self.inner).poll_read(cx, &mut swallowed) {
                    Poll::Ready(Ok(())) if swallowed.filled().is_empty() => Poll::Ready(Ok(())),
                    Poll::Ready(Ok(())) | Poll::Ready(Err(_)) => {
                        self.state = Cut::Broken;
                        Poll::Ready(Err(reset()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CutStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.state == Cut::Broken {
            return Poll::Ready(Err(reset()));
        }
        let armed_here = self.state == Cut::Open && self.sends_armed(buf);
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if armed_here && matches!(written, Poll::Ready(Ok(sent)) if sent > 0) {
            self.disarm();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state == Cut::Broken {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A normal-priority publish whose `XADD` reply is lost is reported as failed and
/// is in Redis exactly once; one whose `XLEN` (the backpressure depth) reply is
/// lost is asked again on a new connection and publishes.
pub(super) async fn lost_reply<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
) -> CheckResult {
    let cutter = LostReply::new(fixture.connector.clone());
    let cut_fixture = fixture.through(cutter.clone());
    let mut client = cut_fixture.client(quick_config())?;
    let normal = client.config().normal_stream.clone();
    let plain = |seq| envelope(seq, BusMessageType::SystemState, MessagePriority::Normal);
    client.publish(&plain(0)).await.map_err(|error| format!("publish before any lost reply: {error}"))?;

    cutter.arm("XADD");
    let outcome = client.publish(&plain(1)).await;
    expect("the XADD reached the connection", cutter.is_armed(), false)?;
    if let Ok(outcome) = outcome {
        return Err(format!("a publish whose XADD reply was lost reported {outcome:?}, not an error"));
    }
    let landed = int(admin, redis::cmd("XLEN").arg(&normal)).await?;
    expect("entries after a write whose reply was lost (it landed once, and was not sent again)", landed, 2)?;

    cutter.arm("XLEN");
    let outcome =
        client.publish(&plain(2)).await.map_err(|error| format!("publish after a lost XLEN reply: {error}"))?;
    expect("XLEN asked again on a new connection", cutter.is_armed(), false)?;
    expect("publish after a lost XLEN reply", matches!(outcome, PublishOutcome::Published { .. }), true)?;
    expect("entries after the read was retried", int(admin, redis::cmd("XLEN").arg(&normal)).await?, 3)?;
    expect("reconnects (one per lost reply)", client.metrics_snapshot().reconnects, 2)
}
