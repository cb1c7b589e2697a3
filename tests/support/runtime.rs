//! The tokio runtimes the integration tests drive futures on, declared once for
//! every test crate: the root's through `support`, core's by path
//! (`#[path = "../../tests/support/runtime.rs"]`), since core cannot depend on
//! the crate these tests belong to.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

/// A current-thread runtime with time paused: a timer jumps to its deadline once
/// nothing else can run, so a backoff, a step cost or a group-commit delay costs no
/// wall time, and virtual durations are exact.
pub fn paused() -> Runtime {
    Builder::new_current_thread().enable_time().start_paused(true).build().expect("a paused tokio runtime")
}

/// Runs `future` to completion on a [`paused`] runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    paused().block_on(future)
}

/// A current-thread runtime on the real clock with I/O: for tests that talk to
/// real sockets, files and servers.
pub fn real() -> Runtime {
    Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}
