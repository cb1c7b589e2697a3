//! What can go wrong on the bus, with what an operator needs to act on it.

use std::time::Duration;

/// An Oona call that did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum OonaError {
    #[error("Redis at {host}:{port} is unreachable after {attempts} connect attempts (last: {last})")]
    Unavailable { host: String, port: u16, attempts: u32, last: String },
    #[error("{command} on stream {stream:?} got no reply within {timeout:?}; the connection was dropped")]
    Timeout { command: &'static str, stream: String, timeout: Duration },
    #[error("{command} on stream {stream:?} failed: {source}")]
    Redis {
        command: &'static str,
        stream: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("{command} on stream {stream:?} returned a reply Oona cannot read: {detail}")]
    Reply { command: &'static str, stream: String, detail: String },
    #[error(
        "{capacity} critical messages are still inside Redis's durability window; publish refused until some age out"
    )]
    OutboxFull { capacity: usize },
}

impl OonaError {
    /// The Redis error code (`NOGROUP`, `OOM`, `LOADING`…) when Redis refused the command.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Self::Redis { source, .. } => source.code(),
            _ => None,
        }
    }
}
