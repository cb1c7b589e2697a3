//! Server-wide state commands read and change: settings `CONFIG` exposes,
//! the counters `INFO stats` reports, and the rows `CLIENT LIST` prints.

use std::collections::BTreeMap;

use super::cmd::Refusal;
use super::stream::NodeLimits;

/// Counters with the names `INFO stats` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `total_connections_received`
    pub connections_received: u64,
    /// `total_commands_processed`
    pub commands_processed: u64,
    /// `rejected_connections`: refused at `maxclients`.
    pub rejected_connections: u64,
    /// `client_query_buffer_limit_disconnections` (Redis 7.4's name): closed for
    /// passing `client-query-buffer-limit`.
    pub query_buffer_limit_disconnections: u64,
    /// `client_idle_timeout_disconnections`: closed after `timeout` seconds idle
    /// (Redis counts these nowhere; the name follows the one above).
    pub idle_timeout_disconnections: u64,
    /// `acl_access_denied_auth`: failed `AUTH` / `HELLO AUTH`.
    pub auth_failures: u64,
}

/// Limits a connection lives under, redis.conf names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `maxclients`
    pub max_clients: usize,
    /// `client-query-buffer-limit`, bytes.
    pub query_buffer_bytes: usize,
    /// `timeout`: seconds a client may stay idle; 0 = forever.
    pub idle_timeout_s: u64,
}

/// One connection as `CLIENT LIST` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRow {
    /// The peer's address.
    pub addr: String,
    /// Server time (ms) it connected.
    pub connected_ms: u64,
    /// Server time (ms) of its last command.
    pub last_command_ms: u64,
}

/// Everything server-wide that is not data.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// This start's `run_id`.
    pub run_id: String,
    /// `requirepass`; `None` lets every client in unauthenticated, as stock Redis.
    pub requirepass: Option<Vec<u8>>,
    /// `stream-node-max-entries` / `stream-node-max-bytes`.
    pub node_limits: NodeLimits,
    /// Connection limits (read-only through `CONFIG GET`).
    pub limits: ConnectionLimits,
    /// `INFO stats`.
    pub stats: Stats,
    /// Open connections by id.
    pub clients: BTreeMap<u64, ClientRow>,
    /// Clients blocked in XREAD / XREADGROUP.
    pub blocked_clients: usize,
    /// An injected condition that refuses commands.
    pub refusal: Option<Refusal>,
}
