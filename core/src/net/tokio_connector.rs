//! The real-profile [`Connector`]: plain tokio TCP.

use std::io;
use std::net::Ipv4Addr;

use tokio::net::{TcpListener, TcpStream};

use super::{Connector, Listener};

/// Connects with tokio's TCP sockets; Nagle is off because every Esper message is a
/// small request that waits for its answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioConnector;

impl Connector for TokioConnector {
    type Stream = TcpStream;
    type Listener = TokioListener;

    async fn connect(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn bind(&self, port: u16) -> io::Result<TokioListener> {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?;
        Ok(TokioListener(listener))
    }
}

/// A tokio [`TcpListener`] behind the [`Listener`] seam.
#[derive(Debug)]
pub struct TokioListener(TcpListener);

impl TokioListener {
    /// Listens on `address` (one interface, or port 0 for a free port), where
    /// [`Connector::bind`] listens on every interface.
    pub async fn bind_addr(address: std::net::SocketAddr) -> io::Result<Self> {
        TcpListener::bind(address).await.map(Self)
    }

    /// The bound address; useful when binding port 0 in tests.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

impl Listener for TokioListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, String)> {
        let (stream, peer) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer.to_string()))
    }
}
