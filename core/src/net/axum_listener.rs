//! Any [`Listener`] of the seam as an axum listener, so an axum app (Nissa's,
//! served by `nissa::serve_http_on`) runs on tokio's sockets for real and on
//! turmoil's in the sim without knowing which.

use std::io;
use std::time::Duration;

use super::Listener;

/// Pause after a failed accept (out of file descriptors, a reset before accept)
/// before trying again, as axum does for tokio's listener.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Wraps a seam listener bound to `port`; its `accept` retries failed accepts.
#[derive(Debug)]
pub struct AxumListener<L> {
    inner: L,
    port: u16,
}

impl<L: Listener> AxumListener<L> {
    /// `inner`, listening on `port` (named in accept-failure warnings).
    pub fn new(inner: L, port: u16) -> Self {
        Self { inner, port }
    }
}

impl<L: Listener> axum::serve::Listener for AxumListener<L> {
    type Io = L::Stream;
    type Addr = String;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok(accepted) => return accepted,
                Err(error) => {
                    tracing::warn!(port = self.port, %error, "accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr().map(|address| address.to_string())
    }
}
