//! The simulated Redis server.
//!
//! A small Redis 7.0 that speaks RESP2 and RESP3 and implements what Oona uses:
//! streams with consumer groups (ids, pending-entries lists with delivery counts
//! and idle times in tokio time), strings with expiry, and the connection
//! commands client libraries send. It runs as a turmoil host (through
//! `TurmoilConnector`) and over real TCP (`esper redis --port P`); the
//! differential test holds its replies byte-for-byte to a real `redis-server`.
//!
//! Layout, mini-redis style: [`request`] reads commands off the wire, `cmd/` has
//! one file per command, [`keyspace`] and [`stream`] hold the data, [`server`]
//! owns connections, blocking reads, durability and faults.
//!
//! Durability follows `appendfsync everysec`: a [`DurableStore`] receives the
//! keyspace once per `fsync_interval`; a crashed and restarted host loads it, so
//! writes since the last fsync are lost, exactly the window real Redis has.
//!
//! Requests are read as Redis 7.0 reads them, malformed input included (see
//! [`request`]); a second differential test holds protocol errors and connection
//! closes to a real `redis-server` as well.
//!
//! Known differences from Redis, none reachable by Oona: one database (`SELECT n`
//! for n > 0 is refused); approximate
//! trimming models radix-tree nodes as runs of 100 appended entries (Redis also
//! closes a node at 4 KiB); `XINFO GROUPS` reports `entries-read` and `lag` as nil.

mod blocking;
mod cmd;
mod id;
mod keyspace;
mod reply;
mod request;
mod server;
mod state;
mod stream;

pub use id::StreamId;
pub use reply::Reply;
pub use request::Limits;
pub use server::{DEFAULT_EPOCH_MS, DurableStore, FaultHandle, RedisServer, ServerConfig};
