//! One reconnecting Redis connection.
//!
//! A `redis` crate `MultiplexedConnection` is built over a stream from the
//! [`Connector`] seam (tokio TCP for real, turmoil TCP in the sim) with the
//! crate's response timeout off, because `XREADGROUP BLOCK` legitimately waits;
//! instead every call gets its own deadline here (`command_timeout`, plus the
//! block time for blocking reads). A call that times out or breaks the connection
//! drops it; the next call reconnects, backing off exponentially with seeded
//! jitter. On every connect the server's `run_id` is read, so a Redis restart —
//! which may have lost the last second of writes — is noticed.

use std::time::Duration;

use rand::RngCore;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, RedisConnectionInfo, Value};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::error::OonaError;
use crate::net::Connector;

/// Commands safe to send twice.
const READ_ONLY: &[&str] = &["PING", "XLEN", "XRANGE", "XPENDING", "XGROUP CREATE"];

/// Where a command is aimed, for errors and traces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub command: &'static str,
    pub stream: &'a str,
}

/// Connection state and the counters it feeds.
#[derive(Debug)]
pub(super) struct Link<C: Connector> {
    connector: C,
    host: String,
    port: u16,
    conn: Option<MultiplexedConnection>,
    backoff: Backoff,
    attempts_per_call: u32,
    failures: u32,
    next_attempt: Option<Instant>,
    command_timeout: Duration,
    run_id: Option<String>,
    restart_seen: bool,
    connected_once: bool,
    last_ok: Option<Instant>,
    pub reconnects: u64,
    pub server_restarts: u64,
}

impl<C: Connector> Link<C> {
    pub fn new(connector: C, host: &str, port: u16, backoff: Backoff, attempts: u32, timeout: Duration) -> Self {
        assert!(attempts > 0, "a link needs at least one connect attempt per call");
        Self {
            connector,
            host: host.to_owned(),
            port,
            conn: None,
            backoff,
            attempts_per_call: attempts,
            failures: 0,
            next_attempt: None,
            command_timeout: timeout,
            run_id: None,
            restart_seen: false,
            connected_once: false,
            last_ok: None,
            reconnects: 0,
            server_restarts: 0,
        }
    }

    /// When Redis last answered anything: what the outbox takes as proof that
    /// older writes are durable. None while a restart check is owed (a restart
    /// was seen, or a check was interrupted): the answer may then come from the
    /// restarted server, which proves nothing about writes it lost.
    pub fn last_ok(&self) -> Option<Instant> {
        if self.restart_seen { None } else { self.last_ok }
    }

    /// Whether a Redis restart was seen since the last call; clears the flag.
    pub fn take_restart(&mut self) -> bool {
        std::mem::take(&mut self.restart_seen)
    }

    /// Asks for the restart check to run again (it was interrupted).
    pub fn flag_restart(&mut self) {
        self.restart_seen = true;
    }

    /// Runs `cmd`, allowing `extra` beyond the command timeout (a blocking read's
    /// block time). A Redis error reply leaves the connection up. A read-only
    /// command that finds the connection broken (Redis restarted, a reset) is
    /// sent once more on a new one; writes are not, since they may have landed.
    pub async fn query(
        &mut self,
        cmd: &Cmd,
        target: Target<'_>,
        extra: Duration,
        rng: &mut impl RngCore,
    ) -> Result<Value, OonaError> {
        let retry = READ_ONLY.contains(&target.command);
        match self.query_once(cmd, target, extra, rng).await {
            Err(OonaError::Redis { source, .. }) if retry && source.code().is_none() => {
                self.query_once(cmd, target, extra, rng).await
            }
            result => result,
        }
    }

    async fn query_once(
        &mut self,
        cmd: &Cmd,
        target: Target<'_>,
        extra: Duration,
        rng: &mut impl RngCore,
    ) -> Result<Value, OonaError> {
        let timeout = self.command_timeout + extra;
        let conn = self.connected(rng).await?;
        let result = tokio::time::timeout(timeout, cmd.query_async::<Value>(conn)).await;
        match result {
            Err(_elapsed) => {
                self.drop_connection("timeout");
                Err(OonaError::Timeout { command: target.command, stream: target.stream.to_owned(), timeout })
            }
            Ok(Err(source)) => {
                if source.code().is_some() {
                    self.last_ok = Some(Instant::now());
                } else {
                    self.drop_connection("connection error");
                }
                Err(OonaError::Redis { command: target.command, stream: target.stream.to_owned(), source })
            }
            Ok(Ok(value)) => {
                self.last_ok = Some(Instant::now());
                Ok(value)
            }
        }
    }

    fn drop_connection(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::warn!(host = %self.host, port = self.port, why, "oona: dropped the Redis connection");
        }
    }

    async fn connected(&mut self, rng: &mut impl RngCore) -> Result<&mut MultiplexedConnection, OonaError> {
        let mut last = String::new();
        for _ in 0..self.attempts_per_call {
            if self.conn.is_some() {
                break;
            }
            if let Some(at) = self.next_attempt.take() {
                tokio::time::sleep_until(at).await;
            }
            match tokio::time::timeout(self.command_timeout, self.open()).await {
                Ok(Ok((conn, run_id))) => self.on_connected(conn, run_id),
                Ok(Err(error)) => last = error,
                Err(_elapsed) => last = format!("no answer within {:?}", self.command_timeout),
            }
            if self.conn.is_none() {
                self.next_attempt = Some(Instant::now() + self.backoff.delay(self.failures, rng));
                self.failures = self.failures.saturating_add(1);
            }
        }
        let (host, port, attempts) = (self.host.clone(), self.port, self.attempts_per_call);
        self.conn.as_mut().ok_or(OonaError::Unavailable { host, port, attempts, last })
    }

    fn on_connected(&mut self, conn: MultiplexedConnection, run_id: Option<String>) {
        if self.connected_once {
            self.reconnects += 1;
        }
        let restarted = matches!((&self.run_id, &run_id), (Some(before), Some(now)) if before != now);
        if restarted {
            self.server_restarts += 1;
            self.restart_seen = true;
        }
        tracing::info!(host = %self.host, port = self.port, restarted, "oona: connected to Redis");
        self.run_id = run_id;
        self.connected_once = true;
        self.failures = 0;
        self.conn = Some(conn);
        self.last_ok = Some(Instant::now());
    }

    /// Connects, sets the connection up and reads the server's `run_id`.
    async fn open(&self) -> Result<(MultiplexedConnection, Option<String>), String> {
        let stream = self.connector.connect(&self.host, self.port).await.map_err(|error| error.to_string())?;
        let config = AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(None);
        let (mut conn, driver) =
            MultiplexedConnection::new_with_config(&RedisConnectionInfo::default(), stream, config)
                .await
                .map_err(|error| error.to_string())?;
        tokio::spawn(driver);
        let info: Value = redis::cmd("INFO").arg("server").query_async(&mut conn).await.map_err(|e| e.to_string())?;
        Ok((conn, run_id(&info)))
    }
}

/// `run_id:<hex>` from an `INFO server` reply.
fn run_id(info: &Value) -> Option<String> {
    let text = match info {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        _ => return None,
    };
    text.lines().find_map(|line| line.strip_prefix("run_id:")).map(|id| id.trim().to_owned())
}
