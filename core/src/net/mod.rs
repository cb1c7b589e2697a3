//! The TCP seam.
//!
//! Subsystems that talk over the network (Oona's Redis client, Nissa's HTTP server,
//! Weatherlight's heartbeats) are generic over a [`Connector`]. The real profile passes
//! [`TokioConnector`]; the sim passes turmoil's sockets through the same trait, so the
//! code under test cannot tell the two apart. [`framed`] puts length-prefixed frames
//! around messages on any such stream, [`http1`] is a small HTTP/1.1 client over it,
//! and [`AxumListener`] lets an axum app accept through any [`Listener`].

mod axum_listener;
pub mod framed;
pub mod http1;
mod tokio_connector;

pub use axum_listener::AxumListener;
pub use tokio_connector::{TokioConnector, TokioListener};

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream as the subsystems see it: ordered, reliable, async.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T> Stream for T where T: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

/// Opens outgoing connections and listening sockets, by host name and port.
///
/// Host names are the names of the Esper-Lite services (`redis`, `tolaria`, …); the
/// sim resolves them to simulated hosts, the real profile through the system resolver.
pub trait Connector: Clone + Send + Sync + 'static {
    /// The connected stream type.
    type Stream: Stream;
    /// The listening socket type.
    type Listener: Listener<Stream = Self::Stream>;

    /// Connects to `host:port`.
    fn connect(&self, host: &str, port: u16) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Listens on `port` on this host. The real profile binds the loopback address
    /// only, so a service is reachable from other machines only when its caller
    /// binds another address deliberately ([`TokioListener::bind_addr`]); the sim's
    /// hosts each have one address.
    fn bind(&self, port: u16) -> impl Future<Output = io::Result<Self::Listener>> + Send;
}

/// A listening socket.
pub trait Listener: Send + 'static {
    /// The accepted stream type.
    type Stream: Stream;

    /// Waits for the next connection; returns it and the peer's address, as text.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, String)>> + Send;

    /// The address this socket is bound to, as the operating system (or the sim)
    /// reports it: what a server announces is where it really listens.
    fn local_addr(&self) -> io::Result<std::net::SocketAddr>;
}
