//! The server: accepts connections through the [`Connector`] seam, runs commands
//! against one shared keyspace, and models durability and operator faults.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use esper_core::net::{Connector, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use tokio::sync::oneshot;

use super::blocking::Blocked;
use super::cmd::{Ctx, Exec, Refusal, Session, dispatch};
use super::keyspace::Keyspace;
use super::reply::Reply;
use super::request::{Limits, ProtocolError, RequestReader};
use super::state::{ClientRow, ConnectionLimits, ServerState};
use super::stream::NodeLimits;

/// Fixed server clock origin (2025-01-01T00:00:00Z in ms), matching the world's
/// epoch, so auto-generated stream ids are the same in every run of a seed.
pub const DEFAULT_EPOCH_MS: u64 = 1_735_689_600_000;

/// Server settings and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Request bounds (`client-query-buffer-limit` among them).
    pub limits: Limits,
    /// `maxclients`: most simultaneous connections; more get
    /// `-ERR max number of clients reached` and count in `rejected_connections`.
    pub max_clients: usize,
    /// `timeout`: a client idle this long (not blocked) is closed; zero = never.
    pub idle_timeout: Duration,
    /// `requirepass`: when set, commands but AUTH/HELLO/QUIT/RESET answer
    /// `-NOAUTH` until the client authenticates.
    pub requirepass: Option<Vec<u8>>,
    /// Server time at start, ms since the Unix epoch (auto ids are built from it).
    pub epoch_ms: u64,
    /// How often writes reach the durable store (`appendfsync everysec`).
    pub fsync_interval: Duration,
    /// `INFO server`'s `run_id`: 40 hex digits, new at every start.
    pub run_id: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_clients: 1024,
            idle_timeout: Duration::ZERO,
            requirepass: None,
            epoch_ms: DEFAULT_EPOCH_MS,
            fsync_interval: Duration::from_secs(1),
            run_id: "0".repeat(40),
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
        *lock(&self.0) = keyspace.durable_copy();
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
    error: Option<Refusal>,
}

impl FaultHandle {
    /// Delays every reply by `delay`.
    pub fn set_reply_delay(&self, delay: Duration) {
        lock(&self.0.settings).reply_delay = delay;
    }

    /// Refuses memory-growing commands (XADD, XGROUP, SET…) with `-OOM …`, as
    /// Redis past `maxmemory` does, until cleared.
    pub fn reply_oom(&self) {
        lock(&self.0.settings).error = Some(Refusal::Oom);
    }

    /// Refuses everything but connection commands with `-LOADING …`, as Redis
    /// loading its dataset does, until cleared.
    pub fn reply_loading(&self) {
        lock(&self.0.settings).error = Some(Refusal::Loading);
    }

    /// Stops injecting error replies and delays.
    pub fn clear(&self) {
        *lock(&self.0.settings) = FaultSettings::default();
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

/// What commands share, under one lock: Redis runs commands one at a time.
#[derive(Debug)]
struct State {
    keyspace: Keyspace,
    server: ServerState,
    blocked: Blocked,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
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
        let server = ServerState {
            run_id: config.run_id.clone(),
            requirepass: config.requirepass.clone(),
            node_limits: NodeLimits::default(),
            limits: ConnectionLimits {
                max_clients: config.max_clients,
                query_buffer_bytes: config.limits.max_query_buffer,
                idle_timeout_s: config.idle_timeout.as_secs(),
            },
            stats: super::state::Stats::default(),
            clients: std::collections::BTreeMap::new(),
            blocked_clients: 0,
            refusal: None,
        };
        let shared = Shared {
            state: Mutex::new(State { keyspace, server, blocked: Blocked::default() }),
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
            let (stream, peer) = listener.accept().await?;
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let _closed = serve_connection(shared, stream, peer).await;
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
        let state = lock(&shared.state);
        if synced != Some(state.keyspace.version()) {
            synced = Some(state.keyspace.version());
            store.save(&state.keyspace);
        }
    }
}

/// Counts a connection for its lifetime and removes its `CLIENT LIST` row.
struct ConnectionSlot {
    shared: Arc<Shared>,
    id: Option<u64>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
        if let Some(id) = self.id {
            let mut state = lock(&self.shared.state);
            state.server.clients.remove(&id);
            state.keyspace.unwatch_all(id);
        }
    }
}

/// One connection: its session, its unparsed input, where its replies go.
struct Connection<S> {
    shared: Arc<Shared>,
    stream: S,
    session: Session,
    reader: RequestReader,
    out: Vec<u8>,
    generation: u64,
    /// The input buffer of blocked reads, kept between them: a fresh zeroed
    /// 16 KiB per blocking `XREADGROUP` was a tenth of the simulated Redis's
    /// instructions in `kasmina-prefetch`.
    wait_chunk: Vec<u8>,
}

async fn serve_connection<S: esper_core::net::Stream>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: String,
) -> std::io::Result<()> {
    let open = shared.connections.fetch_add(1, Ordering::SeqCst);
    let mut slot = ConnectionSlot { shared: Arc::clone(&shared), id: None };
    if open >= shared.config.max_clients {
        lock(&shared.state).server.stats.rejected_connections += 1;
        return stream.write_all(b"-ERR max number of clients reached\r\n").await;
    }
    let id = shared.next_client.fetch_add(1, Ordering::SeqCst);
    slot.id = Some(id);
    {
        let now_ms = RedisServer::now_ms(&shared);
        let mut state = lock(&shared.state);
        state.server.stats.connections_received += 1;
        let row = ClientRow { addr: peer, connected_ms: now_ms, last_command_ms: now_ms };
        state.server.clients.insert(id, row);
    }
    let session = Session::new(id, shared.config.requirepass.is_none());
    let generation = shared.faults.0.reset_generation.load(Ordering::SeqCst);
    let reader = RequestReader::new(shared.config.limits);
    let mut connection =
        Connection { shared, stream, session, reader, out: Vec::new(), generation, wait_chunk: Vec::new() };
    connection.run().await
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

impl<S: esper_core::net::Stream> Connection<S> {
    async fn run(&mut self) -> std::io::Result<()> {
        let mut chunk = vec![0_u8; 16 * 1024];
        loop {
            loop {
                match self.reader.next_request() {
                    Ok(Some(args)) => {
                        if self.execute(args).await? == Flow::Close {
                            return self.flush_and_close().await;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => return self.protocol_error(&error).await,
                }
            }
            self.flush().await?;
            let Some(read) = self.read_input(&mut chunk).await? else { return Ok(()) };
            if let Err(error) = self.reader.feed(chunk.get(..read).unwrap_or_default()) {
                return self.protocol_error(&error).await;
            }
        }
    }

    /// The next input, `None` when the connection is to close: the peer closed
    /// it, a fault reset it, or it stayed idle past `timeout`.
    async fn read_input(&mut self, chunk: &mut [u8]) -> std::io::Result<Option<usize>> {
        let idle = self.shared.config.idle_timeout;
        let generation = self.generation;
        // A reset wins over pending input, so a reset requested before a command
        // was sent always closes the connection first.
        let read = tokio::select! {
            biased;
            () = reset_signal(&self.shared, generation) => return Ok(None),
            read = self.stream.read(chunk) => read?,
            () = idle_expired(idle) => {
                lock(&self.shared.state).server.stats.idle_timeout_disconnections += 1;
                return Ok(None);
            }
        };
        Ok((read > 0).then_some(read))
    }

    async fn flush_and_close(&mut self) -> std::io::Result<()> {
        self.flush().await?;
        self.stream.shutdown().await
    }

    /// Sends the replies so far and Redis's protocol error (if it sends one),
    /// then closes: like Redis's `CLIENT_CLOSE_AFTER_REPLY`.
    async fn protocol_error(&mut self, error: &ProtocolError) -> std::io::Result<()> {
        tracing::debug!(?error, "protocol error; closing the connection");
        if *error == ProtocolError::QueryBufferFull {
            lock(&self.shared.state).server.stats.query_buffer_limit_disconnections += 1;
        }
        if let Some(reply) = error.reply() {
            reply.encode(2, &mut self.out);
        }
        self.stream.write_all(&self.out).await?;
        self.stream.shutdown().await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let delay = lock(&self.shared.faults.0.settings).reply_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Runs one command; a blocking read waits here (earlier replies flushed).
    async fn execute(&mut self, args: Vec<Vec<u8>>) -> std::io::Result<Flow> {
        match self.run_once(&args) {
            Ok(reply) => {
                reply.encode(self.session.resp, &mut self.out);
                Ok(Flow::Continue)
            }
            Err(Exit::Close) => {
                // Redis frees such a client at once: replies still buffered are lost.
                self.out.clear();
                Ok(Flow::Close)
            }
            Err(Exit::ReplyThenClose(reply)) => {
                reply.encode(self.session.resp, &mut self.out);
                Ok(Flow::Close)
            }
            Err(Exit::Blocked(ticket, receiver)) => {
                self.flush().await?;
                self.wait(ticket, receiver).await
            }
        }
    }

    /// Runs the command under the lock, then serves the readers its writes
    /// let go on; a read that blocks is registered before the lock is let go.
    fn run_once(&mut self, args: &[Vec<u8>]) -> Result<Reply, Exit> {
        let now_ms = RedisServer::now_ms(&self.shared);
        let refusal = lock(&self.shared.faults.0.settings).error;
        let mut guard = lock(&self.shared.state);
        let state = &mut *guard;
        state.server.refusal = refusal;
        state.server.blocked_clients = state.blocked.len();
        state.keyspace.select(self.session.db);
        let mut ctx = Ctx {
            keyspace: &mut state.keyspace,
            server: &mut state.server,
            now_ms,
            session: &mut self.session,
            deny_blocking: false,
        };
        let exec = dispatch(&mut ctx, args);
        if let Some(row) = state.server.clients.get_mut(&self.session.id) {
            row.last_command_ms = now_ms;
        }
        state.blocked.serve(&mut state.keyspace, now_ms);
        match exec {
            Exec::Reply(reply) => Ok(reply),
            Exec::ReplyThenClose(reply) => Err(Exit::ReplyThenClose(reply)),
            Exec::Close => Err(Exit::Close),
            Exec::Block(read) => {
                let deadline = (read.timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(read.timeout_ms));
                let (ticket, receiver) = state.blocked.block(read);
                Err(Exit::Blocked(Blocked::wait_for(ticket, deadline), receiver))
            }
        }
    }

    /// Waits for a blocked read's reply, its timeout, a reset or a disconnect.
    /// Input that arrives meanwhile is kept for after the reply, as Redis does.
    async fn wait(&mut self, ticket: WaitFor, receiver: oneshot::Receiver<Reply>) -> std::io::Result<Flow> {
        let mut chunk = std::mem::take(&mut self.wait_chunk);
        chunk.resize(16 * 1024, 0);
        let flow = self.wait_reading_into(&mut chunk, ticket, receiver).await;
        self.wait_chunk = chunk;
        flow
    }

    async fn wait_reading_into(
        &mut self,
        chunk: &mut [u8],
        ticket: WaitFor,
        mut receiver: oneshot::Receiver<Reply>,
    ) -> std::io::Result<Flow> {
        let generation = self.generation;
        loop {
            let reply = tokio::select! {
                biased;
                reply = &mut receiver => reply.unwrap_or(Reply::NilArray),
                () = reset_signal(&self.shared, generation) => {
                    self.cancel(ticket.ticket);
                    return Ok(Flow::Close);
                }
                () = deadline(ticket.deadline) => {
                    if !self.cancel(ticket.ticket) {
                        continue;
                    }
                    Reply::NilArray
                }
                read = self.stream.read(chunk) => {
                    let read = read?;
                    if read == 0 || self.reader.feed(chunk.get(..read).unwrap_or_default()).is_err() {
                        self.cancel(ticket.ticket);
                        return Ok(Flow::Close);
                    }
                    continue;
                }
            };
            reply.encode(self.session.resp, &mut self.out);
            return Ok(Flow::Continue);
        }
    }

    /// Unblocks a read that was not served; false if it was served meanwhile
    /// (its reply is then in the channel).
    fn cancel(&self, ticket: u64) -> bool {
        lock(&self.shared.state).blocked.cancel(ticket)
    }
}

/// How a command ends other than with a reply.
enum Exit {
    Close,
    ReplyThenClose(Reply),
    Blocked(WaitFor, oneshot::Receiver<Reply>),
}

/// A registered blocked read: its ticket and when it times out.
#[derive(Debug, Clone, Copy)]
struct WaitFor {
    ticket: u64,
    deadline: Option<Instant>,
}

impl Blocked {
    fn wait_for(ticket: u64, deadline: Option<Instant>) -> WaitFor {
        WaitFor { ticket, deadline }
    }
}

async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn idle_expired(idle: Duration) {
    if idle.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(idle).await;
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

/// A poisoned lock only means a task panicked mid-command; the data is still the
/// best we have, and a panic is already reported by the world.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
