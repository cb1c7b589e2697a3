//! The server: accepts connections through the [`Connector`] seam, runs commands
//! against one shared keyspace, and models durability and operator faults.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use esper_core::net::{Connector, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::cmd::{Ctx, Exec, Session, dispatch};
use super::keyspace::Keyspace;
use super::reply::Reply;
use super::request::{Limits, ProtocolError, RequestReader};

/// Fixed server clock origin (2025-01-01T00:00:00Z in ms), matching the world's
/// epoch, so auto-generated stream ids are the same in every run of a seed.
pub const DEFAULT_EPOCH_MS: u64 = 1_735_689_600_000;

/// Server settings and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Request bounds.
    pub limits: Limits,
    /// Most simultaneous client connections; more get `-ERR max number of clients reached`.
    pub max_connections: usize,
    /// Server time at start, ms since the Unix epoch (auto ids are built from it).
    pub epoch_ms: u64,
    /// How often writes reach the durable store (`appendfsync everysec`).
    pub fsync_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_connections: 1024,
            epoch_ms: DEFAULT_EPOCH_MS,
            fsync_interval: Duration::from_secs(1),
        }
    }
}

/// What survives a crash: the keyspace as of the last simulated fsync. It lives
/// outside the server's host so a restarted server can load it, like an AOF file.
#[derive(Debug, Clone, Default)]
pub struct DurableStore(Arc<Mutex<Keyspace>>);

impl DurableStore {
    fn load(&self) -> Keyspace {
        lock(&self.0).clone()
    }

    fn save(&self, keyspace: &Keyspace) {
        *lock(&self.0) = keyspace.clone();
    }
}

/// Faults an operator (a test) can switch on while the server runs.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle(Arc<FaultState>);

#[derive(Debug, Default)]
struct FaultState {
    settings: Mutex<FaultSettings>,
    reset: Notify,
    reset_generation: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct FaultSettings {
    reply_delay: Duration,
    error: Option<String>,
}

impl FaultHandle {
    /// Delays every reply by `delay`.
    pub fn set_reply_delay(&self, delay: Duration) {
        lock(&self.0.settings).reply_delay = delay;
    }

    /// Answers every command with `-OOM …` until cleared.
    pub fn reply_oom(&self) {
        lock(&self.0.settings).error = Some("OOM command not allowed when used memory > 'maxmemory'.".to_owned());
    }

    /// Answers every command with `-LOADING …` until cleared.
    pub fn reply_loading(&self) {
        lock(&self.0.settings).error = Some("LOADING Redis is loading the dataset in memory".to_owned());
    }

    /// Stops injecting error replies.
    pub fn clear_errors(&self) {
        lock(&self.0.settings).error = None;
    }

    /// Closes every open connection.
    pub fn reset_connections(&self) {
        self.0.reset_generation.fetch_add(1, Ordering::SeqCst);
        self.0.reset.notify_waiters();
    }
}

/// The simulated Redis server. Clone it to share one keyspace between listeners.
#[derive(Debug, Clone)]
pub struct RedisServer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    keyspace: Mutex<Keyspace>,
    written: Notify,
    config: ServerConfig,
    started: Instant,
    next_client: AtomicU64,
    connections: AtomicUsize,
    faults: FaultHandle,
    durable: Option<DurableStore>,
}

impl RedisServer {
    /// An empty server without durability.
    pub fn new(config: ServerConfig) -> Self {
        Self::build(config, Keyspace::default(), None, FaultHandle::default())
    }

    /// A server that loads `store` and fsyncs into it every `fsync_interval`;
    /// `faults` lets a test inject slow replies, error replies and resets.
    pub fn recover(config: ServerConfig, store: DurableStore, faults: FaultHandle) -> Self {
        let keyspace = store.load();
        Self::build(config, keyspace, Some(store), faults)
    }

    fn build(config: ServerConfig, keyspace: Keyspace, durable: Option<DurableStore>, faults: FaultHandle) -> Self {
        let shared = Shared {
            keyspace: Mutex::new(keyspace),
            written: Notify::new(),
            config,
            started: Instant::now(),
            next_client: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            faults,
            durable,
        };
        Self { shared: Arc::new(shared) }
    }

    /// The handle for injecting faults into this server.
    pub fn faults(&self) -> FaultHandle {
        self.shared.faults.clone()
    }

    /// Binds `port` through `connector` and serves until the listener fails.
    pub async fn serve<C: Connector>(self, connector: C, port: u16) -> std::io::Result<()> {
        let listener = connector.bind(port).await?;
        self.serve_on(listener).await
    }

    /// Serves connections accepted from `listener`.
    pub async fn serve_on<L: Listener>(self, mut listener: L) -> std::io::Result<()> {
        if let Some(store) = self.shared.durable.clone() {
            tokio::spawn(fsync_loop(Arc::clone(&self.shared), store));
        }
        loop {
            let (stream, _peer) = listener.accept().await?;
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let _closed = serve_connection(shared, stream).await;
            });
        }
    }

    /// Server time now, ms since the Unix epoch.
    fn now_ms(shared: &Shared) -> u64 {
        let elapsed = u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        shared.config.epoch_ms.saturating_add(elapsed)
    }
}

async fn fsync_loop(shared: Arc<Shared>, store: DurableStore) {
    let mut synced = None;
    loop {
        tokio::time::sleep(shared.config.fsync_interval).await;
        let keyspace = lock(&shared.keyspace);
        if synced != Some(keyspace.version()) {
            synced = Some(keyspace.version());
            store.save(&keyspace);
        }
    }
}

/// Counts a connection for its lifetime.
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_connection<S: esper_core::net::Stream>(shared: Arc<Shared>, mut stream: S) -> std::io::Result<()> {
    let open = shared.connections.fetch_add(1, Ordering::SeqCst);
    let _slot = ConnectionSlot(Arc::clone(&shared));
    if open >= shared.config.max_connections {
        return stream.write_all(b"-ERR max number of clients reached\r\n").await;
    }
    let id = shared.next_client.fetch_add(1, Ordering::SeqCst);
    let mut session = Session { resp: 2, name: Vec::new(), id };
    let generation = shared.faults.0.reset_generation.load(Ordering::SeqCst);
    let mut reader = RequestReader::new(shared.config.limits);
    let mut chunk = vec![0_u8; 16 * 1024];
    loop {
        let mut out = Vec::new();
        loop {
            match reader.next_request() {
                Ok(Some(args)) => {
                    if execute(&shared, &mut session, args, &mut out, &mut stream).await? == Flow::Close {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(error) => return protocol_error(&mut stream, &mut out, &error).await,
            }
        }
        flush(&shared, &mut stream, &mut out).await?;
        // A reset wins over pending input, so a reset requested before a command
        // was sent always closes the connection first.
        let read = tokio::select! {
            biased;
            () = reset_signal(&shared, generation) => return Ok(()),
            read = stream.read(&mut chunk) => read?,
        };
        if read == 0 {
            return Ok(());
        }
        if let Err(error) = reader.feed(chunk.get(..read).unwrap_or_default()) {
            return protocol_error(&mut stream, &mut out, &error).await;
        }
    }
}

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

async fn reset_signal(shared: &Shared, generation: u64) {
    loop {
        let notified = shared.faults.0.reset.notified();
        if shared.faults.0.reset_generation.load(Ordering::SeqCst) != generation {
            return;
        }
        notified.await;
    }
}

/// Sends the replies so far and Redis's protocol error (if it sends one), then
/// closes: like Redis's `CLIENT_CLOSE_AFTER_REPLY`.
async fn protocol_error<S: esper_core::net::Stream>(
    stream: &mut S,
    out: &mut Vec<u8>,
    error: &ProtocolError,
) -> std::io::Result<()> {
    tracing::debug!(?error, "protocol error; closing the connection");
    if let Some(reply) = error.reply() {
        reply.encode(2, out);
    }
    stream.write_all(out).await?;
    stream.shutdown().await
}

async fn flush<S: esper_core::net::Stream>(shared: &Shared, stream: &mut S, out: &mut Vec<u8>) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let delay = lock(&shared.faults.0.settings).reply_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    stream.write_all(out).await?;
    out.clear();
    Ok(())
}

/// Runs one command, blocking (after flushing earlier replies) when it asks to.
async fn execute<S: esper_core::net::Stream>(
    shared: &Shared,
    session: &mut Session,
    mut args: Vec<Vec<u8>>,
    out: &mut Vec<u8>,
    stream: &mut S,
) -> std::io::Result<Flow> {
    let injected = lock(&shared.faults.0.settings).error.clone();
    if let Some(text) = injected {
        Reply::Error(text.into_bytes()).encode(session.resp, out);
        return Ok(Flow::Continue);
    }
    let mut deadline = None;
    loop {
        let written = shared.written.notified();
        match run_once(shared, session, &args) {
            Exec::Reply(reply) => {
                reply.encode(session.resp, out);
                return Ok(Flow::Continue);
            }
            Exec::Close => return Ok(Flow::Close),
            Exec::Block { timeout_ms, retry } => {
                flush(shared, stream, out).await?;
                let until = *deadline.get_or_insert_with(|| {
                    (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms))
                });
                args = retry;
                let timed_out = match until {
                    Some(until) => tokio::time::timeout_at(until, written).await.is_err(),
                    None => {
                        written.await;
                        false
                    }
                };
                if timed_out {
                    Reply::NilArray.encode(session.resp, out);
                    return Ok(Flow::Continue);
                }
            }
        }
    }
}

fn run_once(shared: &Shared, session: &mut Session, args: &[Vec<u8>]) -> Exec {
    let now_ms = RedisServer::now_ms(shared);
    let mut keyspace = lock(&shared.keyspace);
    let before = keyspace.version();
    let mut ctx = Ctx { keyspace: &mut keyspace, now_ms, session };
    let exec = dispatch(&mut ctx, args);
    if keyspace.version() != before {
        shared.written.notify_waiters();
    }
    exec
}

/// A poisoned lock only means a task panicked mid-command; the data is still the
/// best we have, and a panic is already reported by the world.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
