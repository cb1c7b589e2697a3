//! What Weatherlight supervises: a [`Service`] is anything that can be started
//! again and again, each start giving one *life* — a future that runs until the
//! service ends (a job's `Ok`), fails (`Err`), or is asked to stop.
//!
//! The trait is deliberately tiny so that the same supervisor drives the real
//! profile (services on a tokio `LocalSet`) and the sim (services on a turmoil
//! host, which is a `LocalSet` too): a service is a closure that builds a future
//! from a [`ServiceContext`]. The futures need not be `Send`; the control loop's
//! ports are not.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::hub::TelemetrySender;

/// One life of a service.
pub type ServiceFuture = Pin<Box<dyn Future<Output = Result<(), ServiceError>>>>;

/// Why a life ended badly. The text goes into Weatherlight's telemetry and report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

impl From<String> for ServiceError {
    fn from(reason: String) -> Self {
        Self(reason)
    }
}

impl From<std::io::Error> for ServiceError {
    fn from(error: std::io::Error) -> Self {
        Self(error.to_string())
    }
}

/// A supervised service: builds a fresh life on every (re)start.
pub trait Service {
    /// Starts life number `context.life()`.
    fn start(&mut self, context: ServiceContext) -> ServiceFuture;
}

impl<F> Service for F
where
    F: FnMut(ServiceContext) -> ServiceFuture,
{
    fn start(&mut self, context: ServiceContext) -> ServiceFuture {
        self(context)
    }
}

/// Whether a service is meant to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifetime {
    /// Runs until stopped (Tamiyo, Urza, Nissa). Any end, `Ok` included, is a crash.
    Daemon,
    /// Runs to completion (Tolaria's epochs). `Ok` is done for good; `Err` is a
    /// crash. When every job is done, Weatherlight stops the daemons and returns.
    Job,
}

/// How Weatherlight treats one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The service's name (`tamiyo`, `tolaria`, …), used in telemetry and reports.
    pub name: String,
    pub lifetime: Lifetime,
    /// A life that does not [`ServiceContext::beat`] for this long is hung: it is
    /// aborted and restarted. `None`: the service does not beat, and only its
    /// end is watched.
    pub heartbeat_timeout: Option<Duration>,
}

impl ServiceSpec {
    /// A daemon without heartbeats.
    pub fn daemon(name: &str) -> Self {
        Self { name: name.to_owned(), lifetime: Lifetime::Daemon, heartbeat_timeout: None }
    }

    /// A job without heartbeats.
    pub fn job(name: &str) -> Self {
        Self { name: name.to_owned(), lifetime: Lifetime::Job, heartbeat_timeout: None }
    }

    /// This spec with a heartbeat deadline.
    pub fn beating_within(self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "a zero heartbeat timeout would declare every life hung");
        Self { heartbeat_timeout: Some(timeout), ..self }
    }
}

/// The last beat of a life, shared between the life and Weatherlight.
#[derive(Debug, Clone)]
pub(crate) struct Pulse(Rc<Cell<Instant>>);

impl Pulse {
    pub(crate) fn new() -> Self {
        Self(Rc::new(Cell::new(Instant::now())))
    }

    pub(crate) fn silent_for(&self) -> Duration {
        self.0.get().elapsed()
    }
}

/// What a life gets from Weatherlight: its number, a stop request, a heartbeat
/// and the telemetry hub.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    life: u32,
    stop: watch::Receiver<bool>,
    pulse: Pulse,
    telemetry: TelemetrySender,
}

impl ServiceContext {
    pub(crate) fn new(life: u32, stop: watch::Receiver<bool>, pulse: Pulse, telemetry: TelemetrySender) -> Self {
        Self { life, stop, pulse, telemetry }
    }

    /// 0 for the first start, 1 for the first restart, …
    pub fn life(&self) -> u32 {
        self.life
    }

    /// Whether Weatherlight has asked this life to stop.
    pub fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once Weatherlight asks this life to stop (graceful shutdown); a
    /// service selects on it and ends at a clean point. Never resolves otherwise.
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        if stop.wait_for(|stop| *stop).await.is_err() {
            // Weatherlight is gone without asking: nobody will ever ask.
            std::future::pending::<()>().await;
        }
    }

    /// Tells Weatherlight this life is making progress.
    pub fn beat(&self) {
        self.pulse.0.set(Instant::now());
    }

    /// Where this service sends its telemetry (Weatherlight routes it onto Oona).
    pub fn telemetry(&self) -> TelemetrySender {
        self.telemetry.clone()
    }
}
