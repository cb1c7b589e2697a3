//! turmoil's simulated TCP behind `esper-core`'s [`Connector`] seam.

use std::io;
use std::net::Ipv4Addr;

use esper_core::net::{Connector, Listener};
use turmoil::net::{TcpListener, TcpStream};

/// Connects through the simulated network of the current turmoil host. Usable only
/// from code running inside a [`crate::World`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilConnector;

impl Connector for TurmoilConnector {
    type Stream = TcpStream;
    type Listener = TurmoilListener;

    async fn connect(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        TcpStream::connect((host, port)).await
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
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, String)> {
        let (stream, peer) = self.0.accept().await?;
        Ok((stream, peer.to_string()))
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}
