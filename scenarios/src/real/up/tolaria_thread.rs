//! Tolaria's lives on a thread of their own.
//!
//! The `Device` seam is synchronous: a libtorch step holds the thread that runs it
//! for its whole length. On the services' executor every step would hold
//! Weatherlight's heartbeats, Tamiyo's RPC server and Nissa's ingest with it. So
//! `esper up` runs each Tolaria life — the trainer with its device, Tamiyo client,
//! Kasmina, checkpoints and telemetry — on a thread with its own current-thread
//! runtime, and the life Weatherlight supervises only relays: each epoch's line
//! and a beat back to the services' executor, a stop request out. The sim never
//! comes here (its Tolaria host keeps the one simulated thread), and `esper-core`
//! starts no threads.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// Messages in flight from a Tolaria thread at most: it reports once an epoch, so
/// a full channel only means the services' executor is behind, and the thread waits.
const PROGRESS_CAPACITY: usize = 8;

/// What a Tolaria thread tells its life on the services' executor.
#[derive(Debug)]
pub(super) enum Progress {
    /// A line to print as it is.
    Line(String),
    /// An epoch is done: the life beats, records it and prints its line.
    Epoch { epoch: u32, line: String },
    /// Training ended, and how; the last message.
    Ended(Result<(), String>),
}

/// The thread's end: where it reports, and whether it was asked to stop.
#[derive(Debug)]
pub(super) struct Relay {
    progress: mpsc::Sender<Progress>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Whether Weatherlight asked the life to stop (or the life is gone).
    pub(super) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends `progress` to the life. A life that is gone (aborted) reads nothing,
    /// and has asked the thread to stop: training ends after its epoch.
    pub(super) async fn report(&self, progress: Progress) {
        let _ = self.progress.send(progress).await;
    }
}

/// The life's end of a running thread.
#[derive(Debug)]
pub(super) struct Remote {
    progress: mpsc::Receiver<Progress>,
    stop: StopOnDrop,
}

impl Remote {
    /// The thread's next message; `None` once it ended without `Ended` (a panic).
    pub(super) async fn next(&mut self) -> Option<Progress> {
        self.progress.recv().await
    }

    /// Asks the thread to stop after its current epoch.
    pub(super) fn request_stop(&self) {
        self.stop.0.store(true, Ordering::Relaxed);
    }
}

/// Dropping the life's end (Weatherlight aborted the life) stops the thread too.
#[derive(Debug)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts `train` on a new thread called `name`, on a current-thread runtime of
/// its own (inside a `LocalSet`, as the services' executor is). The future is
/// built on that thread, so it need not be `Send`; only `train` must be.
pub(super) fn start<F, Fut>(name: String, train: F) -> std::io::Result<(JoinHandle<()>, Remote)>
where
    F: FnOnce(Relay) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let (sender, receiver) = mpsc::channel(PROGRESS_CAPACITY);
    let stop = Arc::new(AtomicBool::new(false));
    let relay = Relay { progress: sender.clone(), stop: Arc::clone(&stop) };
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        let ended = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => tokio::task::LocalSet::new().block_on(&runtime, train(relay)),
            Err(error) => Err(format!("starting Tolaria's runtime: {error}")),
        };
        // Outside any runtime now, where a blocking send is allowed.
        let _ = sender.blocking_send(Progress::Ended(ended));
    })?;
    Ok((thread, Remote { progress: receiver, stop: StopOnDrop(stop) }))
}

/// Waits, off the executor, for `thread` to end: a new life never trains beside
/// the last one's thread (both would write the checkpoint). The thread's own end
/// was reported to its life, a panic included (as a missing `Ended`).
pub(super) async fn join(thread: JoinHandle<()>) {
    #[allow(clippy::disallowed_methods, reason = "real profile only: waits for a thread without holding the executor")]
    let joined = tokio::task::spawn_blocking(move || thread.join());
    let _ = joined.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's lines arrive in order and end with its result; a stop request
    /// reaches it; a panic on the thread is a missing `Ended`, not a hang.
    #[test]
    fn relays_lines_stop_and_end_and_notices_a_panic() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (thread, mut remote) = start("relay-test".to_owned(), |relay: Relay| async move {
                relay.report(Progress::Epoch { epoch: 1, line: "one".to_owned() }).await;
                while !relay.stop_requested() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err("stopped".to_owned())
            })
            .expect("thread");
            assert!(matches!(remote.next().await, Some(Progress::Epoch { epoch: 1, .. })));
            remote.request_stop();
            assert!(matches!(remote.next().await, Some(Progress::Ended(Err(reason))) if reason == "stopped"));
            join(thread).await;
            let (thread, mut remote) =
                start("panic-test".to_owned(), |_: Relay| async move { panic!("a device bug") }).expect("thread");
            assert!(remote.next().await.is_none());
            join(thread).await;
        });
    }
}
