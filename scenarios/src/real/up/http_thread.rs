//! Nissa's HTTP endpoint on a thread of its own.
//!
//! Everything else `esper up` runs shares one current-thread executor, where a
//! libtorch training step (synchronous: the `Device` seam is a plain call) or any
//! other long computation holds the thread for its length. `/healthz` is how an
//! orchestrator decides whether to kill the process, so it must not wait behind
//! them: the HTTP server gets a second current-thread runtime on a dedicated
//! thread, sharing only the `Nissa` handle (an `Arc`) with the services. Real
//! profile only; the sim serves Nissa's HTTP on its single simulated thread.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use esper_core::net::TokioListener;
use esper_core::nissa::{Nissa, serve_http_on};
use tokio::sync::oneshot;

/// The running HTTP thread.
pub(super) struct HttpThread {
    /// Where it listens (the real port when `--nissa-addr` asked for port 0).
    pub addr: SocketAddr,
    /// Resolves when the server stopped by itself (its listener failed).
    pub ended: oneshot::Receiver<std::io::Error>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `addr` on a new thread and serves `nissa` there until [`HttpThread::stop`].
/// Returns once the listener is bound (or could not be).
pub(super) fn start(addr: SocketAddr, nissa: Nissa) -> std::io::Result<HttpThread> {
    let (bound_tx, bound_rx) = mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let (ended_tx, ended) = oneshot::channel();
    let thread = std::thread::Builder::new().name("nissa-http".to_owned()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => return drop(bound_tx.send(Err(error))),
        };
        runtime.block_on(async move {
            let (listener, port) = match bind(addr).await {
                Ok((listener, local)) => {
                    let _ = bound_tx.send(Ok(local));
                    (listener, local.port())
                }
                Err(error) => return drop(bound_tx.send(Err(error))),
            };
            tokio::select! {
                served = serve_http_on(listener, port, nissa) => {
                    // The server serves until its listener fails; an `Ok` end would be as fatal.
                    let _ = ended_tx.send(served.err().unwrap_or_else(|| std::io::Error::other("the server ended")));
                }
                _ = stopped => {}
            }
        });
    })?;
    let addr = bound_rx.recv().map_err(|_| std::io::Error::other("Nissa's HTTP thread ended before binding"))??;
    Ok(HttpThread { addr, ended, stop: Some(stop), thread: Some(thread) })
}

async fn bind(addr: SocketAddr) -> std::io::Result<(TokioListener, SocketAddr)> {
    let listener = TokioListener::bind_addr(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

impl HttpThread {
    /// Stops serving and waits for the thread to end.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpThread {
    /// An early return (an error after the start) must not leave the thread serving.
    fn drop(&mut self) {
        self.shut_down();
    }
}
