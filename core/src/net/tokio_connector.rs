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

    /// Binds `127.0.0.1:port`: safe by default (see `docs/security.md`).
    async fn bind(&self, port: u16) -> io::Result<TokioListener> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        Ok(TokioListener(listener))
    }
}

/// A tokio [`TcpListener`] behind the [`Listener`] seam.
#[derive(Debug)]
pub struct TokioListener(TcpListener);

impl TokioListener {
    /// Listens on `address` (any interface the caller chose, or port 0 for a free
    /// port), where [`Connector::bind`] listens on loopback only.
    pub async fn bind_addr(address: std::net::SocketAddr) -> io::Result<Self> {
        TcpListener::bind(address).await.map(Self)
    }

    /// The bound address; useful when binding port 0.
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

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_listens_on_loopback_and_reports_the_port_it_got() {
        let listener = TokioConnector.bind(0).await.expect("bind");
        let address = Listener::local_addr(&listener).expect("bound address");
        assert_eq!(address.ip(), std::net::IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_ne!(address.port(), 0, "the port the system chose, not the one asked for");
    }
}
